#!/usr/bin/env python3
"""Generate notebooks/NAME.ipynb from episodes/NAME.md, the lesson's single source.

    python tools/notebooks.py           # write every notebook, and the live-coding handouts
    python tools/notebooks.py --check   # exit 1 if a notebook or handout differs from its episode

jupytext reads the Workbench Markdown (format ``md:markdown``: told, not guessed, since a
guess sees the ``:::`` divs and asks for pandoc). Then the divs become bold headings, code in a
``solution`` div is collapsed (it still runs under nbval), and outputs are left empty.

Two comments on a code cell's first line become tags (the Workbench's pandoc reads a fence's
info string as one word, so tags cannot go there): ``# Set-up: ...`` tags it ``setup``, and
``# This cell is meant to fail ...`` tags it ``raises-exception`` for nbval.

The handouts in ``notebooks/handouts/`` are the same notebooks with every code cell left empty
except the set-up cells, so that participants type along with the instructor.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import List, Optional

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
EPISODES = ROOT / "episodes"
NOTEBOOKS = ROOT / "notebooks"
HANDOUTS = "handouts"

OPEN_DIV = re.compile(r"^:{3,}\s*\{?\.?([\w-]+)\}?\s*$")
CLOSE_DIV = re.compile(r"^:{3,}\s*$")
SETUP_MARK = re.compile(r"^#\s*set-up\b", re.IGNORECASE)
FAIL_MARK = re.compile(r"^#.*\bmeant to fail\b", re.IGNORECASE)
FIGURE = re.compile(r"!\[(?P<caption>[^\]]*)\]\((?P<src>[^)]+)\)\{alt='(?P<alt>[^']*)'\}")
HEADINGS = {
    "questions": "**Questions**", "objectives": "**Objectives**", "keypoints": "**Key points**",
    "challenge": "---\n\n**Challenge**", "solution": "**Solution** (the code below is collapsed: click the "
    "blue bar at its left, or the three dots, to see it)", "callout": "**Callout**",
    "instructor": "**Instructor note**", "discussion": "**Discussion**", "prereq": "**Prerequisites**",
    "checklist": "**Checklist**", "spoiler": "**More**", "hint": "**Hint**", "testimonial": "**Testimonial**",
}


def episodes() -> List[Path]:
    return sorted(EPISODES.glob("[0-9]*.md"))


def plain_figures(text: str) -> str:
    """Workbench's ``![caption](src){alt='...'}`` as Markdown's ``![alt](src)`` and a caption line."""
    return FIGURE.sub(lambda m: f"![{m['alt']}]({m['src']})\n\n*Figure: {m['caption']}*", text)


def convert_divs(lines: List[str], stack: List[str]) -> List[str]:
    """Drop ``:::`` fences, keeping track of open divs in ``stack``; label each div once.

    A div that opens with its own heading (``## Challenge 1: ...``) keeps that heading; others
    get a bold label such as **Callout**.
    """
    result: List[str] = []
    pending: Optional[str] = None
    for line in lines:
        opened, closed = OPEN_DIV.match(line), CLOSE_DIV.match(line)
        if closed:
            if stack:
                stack.pop()
            continue
        if opened:
            stack.append(opened.group(1))
            pending = opened.group(1)
            continue
        if pending is not None and line.strip():
            label = HEADINGS.get(pending, f"**{pending.title()}**")
            if line.lstrip().startswith("#"):
                label = "---" if label.startswith("---") else ""
            if label:
                result.extend([label, ""])
            pending = None
        result.append(line)
    if pending is not None:
        result.append(HEADINGS.get(pending, f"**{pending.title()}**"))
    return result


def _front_matter(text: str) -> dict:
    fields = {}
    for line in text.strip().strip("-").splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            fields[key.strip()] = value.strip().strip("\"'")
    return fields


def episode_to_notebook(path: Path) -> nbformat.NotebookNode:
    """The notebook for one episode, without outputs."""
    source = jupytext.read(path, fmt="md:markdown")
    cells = []
    stack: List[str] = []
    for cell in source.cells:
        if cell.cell_type == "raw" and cell.source.startswith("---"):
            meta = _front_matter(cell.source)
            text = f"# {meta.get('title', path.stem)}\n\n*Teaching: {meta.get('teaching', '?')} min · " \
                   f"Exercises: {meta.get('exercises', '?')} min*\n\nThis notebook is generated from " \
                   f"`episodes/{path.name}`; edit the episode, not the notebook."
            cells.append(nbformat.v4.new_markdown_cell(text))
            continue
        if cell.cell_type == "code":
            metadata = {}
            tags = list(cell.metadata.get("tags", []))
            first_line = cell.source.lstrip().split("\n", 1)[0]
            if SETUP_MARK.match(first_line):
                tags.append("setup")
            if FAIL_MARK.match(first_line):
                tags.append("raises-exception")
            if "solution" in stack:
                metadata["jupyter"] = {"source_hidden": True}
                tags.append("solution")
            if tags:
                metadata["tags"] = tags
            cells.append(nbformat.v4.new_code_cell(cell.source, metadata=metadata))
            continue
        lines = convert_divs(cell.source.splitlines(), stack)
        text = "\n".join(lines).strip().replace("](fig/", "](../episodes/fig/")
        text = plain_figures(text)
        if text:
            cells.append(nbformat.v4.new_markdown_cell(text))
    if stack:
        raise ValueError(f"{path.name}: fenced divs left open at the end: {stack}")
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for index, cell in enumerate(notebook.cells):  # stable ids, so regeneration is reproducible
        cell.id = f"{path.stem[:40]}-{index:03d}"
    return notebook


def handout(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook with its code cells emptied, except the set-up cells."""
    copy = nbformat.from_dict(json.loads(json.dumps(notebook)))
    for cell in copy.cells:
        if cell.cell_type == "code" and "setup" not in cell.metadata.get("tags", []):
            cell.source = ""
            cell.metadata.pop("jupyter", None)
        if cell.cell_type == "markdown":
            cell.source = cell.source.replace("](../episodes/fig/", "](../../episodes/fig/")
    copy.cells.insert(1, nbformat.v4.new_markdown_cell(
        "*Live-coding handout: type the code along with your instructor. The full notebook, with "
        "every cell filled in, is one folder up.*"))
    for index, cell in enumerate(copy.cells):
        cell.id = f"handout-{index:03d}"
    return copy


def notebook_text(notebook: nbformat.NotebookNode) -> str:
    return nbformat.writes(notebook) + "\n"


def outputs(path: Path) -> dict:
    """{target path: text} for one episode: its notebook and its handout."""
    notebook = episode_to_notebook(path)
    return {NOTEBOOKS / f"{path.stem}.ipynb": notebook_text(notebook),
            NOTEBOOKS / HANDOUTS / f"{path.stem}.ipynb": notebook_text(handout(notebook))}


def main(argv: List[str]) -> int:
    check = "--check" in argv
    stale = []
    (NOTEBOOKS / HANDOUTS).mkdir(parents=True, exist_ok=True)
    for path in episodes():
        for target, text in outputs(path).items():
            if check:
                if not target.exists() or target.read_text(encoding="utf-8") != text:
                    stale.append(str(target.relative_to(NOTEBOOKS)))
            else:
                target.write_text(text, encoding="utf-8", newline="\n")
                print(f"wrote {target}")
    if stale:
        print("out of sync with their episodes (run `python lesson.py notebooks`): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
