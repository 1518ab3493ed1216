"""Code that fits: no line of code in an episode or on the set-up page is longer than 79 characters.

At 1280 px the Workbench shows about 78 characters of a code block; a longer line is cut off, and
on a laptop in JupyterLab it wraps where Python does not. Break a long call the way Black does:
one argument per line inside the brackets, the closing bracket on a line of its own. Printouts
(``output`` blocks, written by tools/outputs.py) are what Python prints, and are not code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 79
PAGES = sorted((ROOT / "episodes").glob("[0-9]*.md")) + [ROOT / "learners" / "setup.md"]
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*\{?\.?([\w+-]*)")


def code_lines(text: str) -> List[Tuple[int, str]]:
    """(line number, line) of every line inside a fenced code block that is not an ``output`` block.

    >>> code_lines("text\\n```python\\nx = 1\\n```\\n```output\\n" + "9" * 90 + "\\n```")
    [(3, 'x = 1')]
    """
    found, fence, kind = [], None, ""
    for number, line in enumerate(text.splitlines(), start=1):
        match = FENCE.match(line)
        if fence is None:
            if match:
                fence, kind = match.group(2), match.group(3)
            continue
        if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
            fence = None
            continue
        if kind != "output":
            found.append((number, line))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_code_line_is_longer_than_79_characters(page):
    long = [f"  line {number} ({len(line)} characters): {line.strip()[:70]}"
            for number, line in code_lines(page.read_text(encoding="utf-8")) if len(line) > LIMIT]
    assert not long, (f"{page.relative_to(ROOT)}: {len(long)} code line(s) longer than {LIMIT} characters "
                      f"(break them as Black would):\n" + "\n".join(long))


def test_the_check_counts_what_a_reader_sees():
    text = "```python\n" + "x" * 79 + "\n" + "y" * 80 + "\n```\n\n```output\n" + "z" * 120 + "\n```\n"
    assert [len(line) for _, line in code_lines(text)] == [79, 80]
