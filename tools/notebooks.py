#!/usr/bin/env python3
"""Generate notebooks/NAME.ipynb from episodes/NAME.md, the lesson's single source.

    python tools/notebooks.py           # write every notebook
    python tools/notebooks.py --check   # exit 1 if a notebook differs from its episode

jupytext reads the Workbench Markdown (format ``md:markdown``: told, not guessed, since a
guess sees the ``:::`` divs and asks for pandoc). Then the divs become bold headings, code in a
``solution`` div is collapsed (it still runs under nbval), and outputs are left empty.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import List

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
EPISODES = ROOT / "episodes"
NOTEBOOKS = ROOT / "notebooks"

OPEN_DIV = re.compile(r"^:{3,}\s*\{?\.?([\w-]+)\}?\s*$")
CLOSE_DIV = re.compile(r"^:{3,}\s*$")
HEADINGS = {
    "questions": "**Questions**", "objectives": "**Objectives**", "keypoints": "**Key points**",
    "challenge": "---\n\n**Challenge**", "solution": "**Solution** (the code below is collapsed: click the "
    "blue bar at its left, or the three dots, to see it)", "callout": "**Callout**",
    "instructor": "**Instructor note**", "discussion": "**Discussion**", "prereq": "**Prerequisites**",
    "checklist": "**Checklist**", "spoiler": "**More**", "hint": "**Hint**", "testimonial": "**Testimonial**",
}


def episodes() -> List[Path]:
    return sorted(EPISODES.glob("[0-9]*.md"))


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
            if "solution" in stack:
                metadata["jupyter"] = {"source_hidden": True}
                tags.append("solution")
            if tags:
                metadata["tags"] = tags
            cells.append(nbformat.v4.new_code_cell(cell.source, metadata=metadata))
            continue
        lines = []
        for line in cell.source.splitlines():
            opened, closed = OPEN_DIV.match(line), CLOSE_DIV.match(line)
            if closed:
                if stack:
                    stack.pop()
                continue
            if opened:
                stack.append(opened.group(1))
                lines.append(HEADINGS.get(opened.group(1), f"**{opened.group(1).title()}**"))
                continue
            lines.append(line)
        text = "\n".join(lines).strip()
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


def notebook_text(notebook: nbformat.NotebookNode) -> str:
    return nbformat.writes(notebook) + "\n"


def main(argv: List[str]) -> int:
    check = "--check" in argv
    stale = []
    NOTEBOOKS.mkdir(exist_ok=True)
    for path in episodes():
        target = NOTEBOOKS / f"{path.stem}.ipynb"
        text = notebook_text(episode_to_notebook(path))
        if check:
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                stale.append(target.name)
        else:
            target.write_text(text, encoding="utf-8", newline="\n")
            print(f"wrote {target}")
    if stale:
        print("out of sync with their episodes (run `python lesson.py notebooks`): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
