"""What learners get from tools/notebooks.py: figures that resolve, no spoilers, handouts to type into.

Checked on the committed notebooks (generated JSON), against the episodes read here with a
parser of this test's own, so that a mistake in the generator cannot hide itself.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import notebooks as notebook_tool  # noqa: E402

EPISODES = sorted((ROOT / "episodes").glob("[0-9]*.md"))
NOTEBOOKS = ROOT / "notebooks"
ALL_NOTEBOOKS = (sorted(NOTEBOOKS.glob("*.ipynb")) + sorted((NOTEBOOKS / "handouts").glob("*.ipynb"))
                 + sorted((NOTEBOOKS / "self-study").glob("*.ipynb")))
DIV = re.compile(r"^:{3,}\s*\{?\.?([\w-]+)\}?\s*$")
END = re.compile(r"^:{3,}\s*$")


def _cells(path: Path) -> list:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def divs(episode: Path) -> dict:
    """{div kind: [(prose lines, code blocks)]}: what each div of an episode holds."""
    found: dict = {}
    stack: list = []
    fence = None
    printout = False                    # inside an ```output block that tools/outputs.py wrote
    for line in notebook_tool.strip_generated(episode.read_text(encoding="utf-8")).splitlines():
        if printout:
            printout = not line.startswith("```")
            continue
        if fence is not None:
            if line.startswith("```"):
                stack[-1][2].append("\n".join(fence)) if stack else None
                fence = None
            else:
                fence.append(line)
            continue
        if line.startswith("```output"):
            printout = True
        elif line.startswith("```"):
            fence = []
        elif END.match(line):
            kind, prose, code = stack.pop()
            found.setdefault(kind, []).append((prose, code))
        elif DIV.match(line):
            stack.append((DIV.match(line).group(1), [], []))
        elif stack and line.strip() and not line.startswith(("#", "![")):
            stack[-1][1].append(line.strip())
    return found


def heading_levels(markdown: str) -> list:
    """The levels of a Markdown cell's headings (outside code fences)."""
    levels, fenced = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"^#{1,6}\s", line):
            levels.append(len(line) - len(line.lstrip("#")))
    return levels


def hidden_cells(cells: list) -> set:
    """The indexes of the cells JupyterLab hides when it opens the notebook: those under a heading cell
    marked collapsed (``jp-MarkdownHeadingCollapsed``), up to the next cell with a heading of that
    level or higher (JupyterLab takes a cell's highest heading as its level)."""
    hidden, closing = set(), None
    for index, cell in enumerate(cells):
        levels = heading_levels(_source(cell)) if cell["cell_type"] == "markdown" else []
        if closing is not None:
            if levels and min(levels) <= closing:
                closing = None
            else:
                hidden.add(index)
                continue
        if levels and cell["metadata"].get(notebook_tool.HEADING_COLLAPSED):
            closing = min(levels)
    return hidden


def visible_text(cells: list) -> str:
    """The Markdown a learner reads without clicking: collapsed sections, closed <details> and
    comments left out."""
    hidden = hidden_cells(cells)
    text = "\n".join(_source(c) for i, c in enumerate(cells) if c["cell_type"] == "markdown" and i not in hidden)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    return re.sub(r"<details>.*?</details>", "", text, flags=re.S)


def _long_lines(lines: list) -> list:
    """Lines long enough to be unlikely to appear elsewhere by chance."""
    return [line for line in lines if len(line) > 40]


@pytest.mark.parametrize("episode", EPISODES, ids=lambda p: p.stem)
def test_learner_notebooks_hide_solutions_and_leave_out_instructor_notes(episode):
    cells = _cells(NOTEBOOKS / f"{episode.stem}.ipynb")
    everything = "\n".join(_source(c) for c in cells)
    shown = visible_text(cells)
    parts = divs(episode)
    solution_lines = _long_lines([line for prose, _ in parts.get("solution", []) for line in prose])
    instructor_lines = _long_lines([line for prose, _ in parts.get("instructor", []) for line in prose])
    assert parts.get("solution"), "every episode has at least one challenge with a solution"
    for line in solution_lines:
        assert line in everything, f"solution text missing: {line!r}"
        assert line not in shown, f"solution text visible without a click: {line!r}"
    for line in instructor_lines:
        assert line not in everything, f"instructor note in the learners' notebook: {line!r}"
    assert "Instructor note" not in everything
    # one click opens a solution: a collapsed "Solution" heading, under which its prose, its code
    # and (once run) its output are plain cells, hidden until then
    hidden = hidden_cells(cells)
    solution_code = [block for _, code in parts.get("solution", []) for block in code]
    in_solutions = [i for i, c in enumerate(cells) if c["cell_type"] == "code"
                    and "solution" in c["metadata"].get("tags", [])]
    assert len(in_solutions) == len(solution_code)
    for index, block in zip(in_solutions, solution_code):
        assert index in hidden, f"solution code visible without a click: {block[:60]!r}"
        assert notebook_tool.episode_code(_source(cells[index])) == block.strip()
        assert "jupyter" not in cells[index]["metadata"]
    headings = [c for c in cells if c["cell_type"] == "markdown" and c["metadata"].get(notebook_tool.HEADING_COLLAPSED)]
    assert [_source(c).lstrip("# ") for c in headings if "solution" in c["metadata"]["tags"]] == \
        ["Solution"] * len(parts["solution"])
    assert "%%solution" not in everything and "%load_ext" not in everything and "<details>" not in everything
    # whatever is not in a solution, hint or "More" box stays visible: the challenges, the code
    for line in _long_lines([line for prose, _ in parts.get("challenge", []) for line in prose]):
        assert line in shown, f"challenge text hidden: {line!r}"
    assert not [i for i, c in enumerate(cells) if i in hidden and c["cell_type"] == "code"
                and not {"solution", "hint", "spoiler"} & set(c["metadata"].get("tags", []))], "an episode cell is hidden"
    # no "edit the episode" and no promise of collapsed code where nothing is collapsed
    assert "edit the episode" not in shown
    assert "collapsed" not in shown


@pytest.mark.parametrize("episode", EPISODES, ids=lambda p: p.stem)
def test_handouts_keep_challenges_and_shown_code_and_drop_solutions(episode):
    full = _cells(NOTEBOOKS / f"{episode.stem}.ipynb")
    cells = _cells(NOTEBOOKS / "handouts" / f"{episode.stem}.ipynb")
    everything = "\n".join(_source(c) for c in cells)
    parts = divs(episode)
    for prose, _ in parts.get("challenge", []):
        for line in _long_lines(prose):
            assert line in everything, f"challenge text missing from the handout: {line!r}"
    for kind in ("solution", "instructor"):
        for line in _long_lines([line for prose, _ in parts.get(kind, []) for line in prose]):
            assert line not in everything, f"{kind} text in the handout: {line!r}"
    # a solution's code is gone from the handout, unless the cell is a reveal ("Show, do not type")
    for _, blocks in parts.get("solution", []):
        for block in blocks:
            assert (block.strip() in everything) == block.lstrip().startswith("# Show, do not type"), block[:80]
    assert "collapsed" not in everything and "%%solution" not in everything
    code = [c for c in cells if c["cell_type"] == "code"]
    reveals = [c for c in code if {"show", "solution"} <= set(c["metadata"].get("tags", []))]
    for cell in code:
        kept = {"setup", "show"} & set(cell["metadata"].get("tags", []))
        assert bool(_source(cell).strip()) == bool(kept), _source(cell)[:80]
        assert "jupyter" not in cell["metadata"]
    shown = [_source(c) for c in full if c["cell_type"] == "code" and "show" in c["metadata"].get("tags", [])]
    assert shown == [_source(c) for c in code if "show" in c["metadata"].get("tags", [])]
    with_code = sum(1 for _, blocks in parts.get("solution", [])
                    if blocks and not blocks[0].lstrip().startswith("# Show, do not type"))
    assert sum("exercise" in c["metadata"].get("tags", []) for c in code) == with_code
    assert all(_source(c).lstrip().startswith("# Show, do not type") for c in reveals)


def test_the_site_keeps_instructor_notes_and_promises_no_collapsed_code():
    for episode in EPISODES:
        notebook = notebook_tool.render(episode, notebook_tool.SITE)
        text = "\n".join(c.source for c in notebook.cells)
        for line in _long_lines([line for prose, _ in divs(episode).get("instructor", []) for line in prose]):
            assert line in text
        assert "collapsed" not in text and "%%solution" not in text


@pytest.mark.parametrize("notebook", ALL_NOTEBOOKS, ids=lambda p: p.relative_to(NOTEBOOKS).as_posix())
def test_every_image_resolves_inside_notebooks(notebook):
    """JupyterLab serves notebooks/ only: an image must resolve from the notebook's own folder and
    stay inside notebooks/ (the rule of CI's before-stop hook)."""
    root = os.path.realpath(NOTEBOOKS)
    for cell in _cells(notebook):
        if cell["cell_type"] != "markdown":
            continue
        text = _source(cell)
        sources = re.findall(r"!\[[^\]]*\]\(([^)\s]+)", text) + re.findall(r"<img[^>]*src=[\"']([^\"']+)", text)
        for src in sources:
            assert not re.match(r"(https?:|data:|attachment:)", src) or src.startswith("attachment:"), \
                f"{src}: a figure from the web does not show offline"
            target = os.path.realpath(os.path.join(notebook.parent, src))
            assert target.startswith(root + os.sep), f"{src} is outside notebooks/"
            assert os.path.isfile(target), f"{src} does not exist"
            copies = [ROOT / folder / Path(target).relative_to(root) for folder in ("episodes", "learners")]
            assert any(c.is_file() and Path(target).read_bytes() == c.read_bytes() for c in copies), \
                f"{src} differs from the episode's (or the self-study page's)"


def test_figures_travel_with_the_notebooks(tmp_path, monkeypatch):
    """The generator copies an episode's figure into notebooks/fig/, links the handout to
    ../fig/, removes a figure no episode shows, and refuses an image outside the episode's folder."""
    episodes, notebooks = tmp_path / "episodes", tmp_path / "notebooks"
    (episodes / "fig").mkdir(parents=True)
    (episodes / "fig" / "steps.png").write_bytes(b"\x89PNG not really")
    episode = episodes / "01-demo.md"
    episode.write_text("---\ntitle: 'Demo'\n---\n\nText.\n\n![Caption](fig/steps.png){alt=\"the dog's steps\"}\n\n"
                       "```python\nprint(1)\n```\n", encoding="utf-8")
    monkeypatch.setattr(notebook_tool, "EPISODES", episodes)
    monkeypatch.setattr(notebook_tool, "NOTEBOOKS", notebooks)
    (notebooks / "fig").mkdir(parents=True)
    (notebooks / "fig" / "old.png").write_bytes(b"old")
    assert notebook_tool.main([]) == 0 and notebook_tool.main(["--check"]) == 0
    assert (notebooks / "fig" / "steps.png").read_bytes() == b"\x89PNG not really"
    assert not (notebooks / "fig" / "old.png").exists()
    learner = "".join(_source(c) for c in _cells(notebooks / "01-demo.ipynb"))
    handout = "".join(_source(c) for c in _cells(notebooks / "handouts" / "01-demo.ipynb"))
    assert "![the dog's steps](fig/steps.png)" in learner and "*Figure: Caption*" in learner
    assert "![the dog's steps](../fig/steps.png)" in handout
    (episodes / "fig" / "steps.png").write_bytes(b"changed")
    assert notebook_tool.main(["--check"]) == 1
    episode.write_text(episode.read_text().replace("fig/steps.png", "../outside.png"), encoding="utf-8")
    (tmp_path / "outside.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="inside notebooks"):
        notebook_tool.main([])


def test_a_self_study_page_gets_a_notebook_of_its_own(tmp_path, monkeypatch):
    """A learners' page that says ``self-study: true`` becomes notebooks/self-study/NAME.ipynb (no
    handout, figures linked one folder up); a page that does not say so gets no notebook."""
    learners, notebooks = tmp_path / "learners", tmp_path / "notebooks"
    (learners / "fig").mkdir(parents=True)
    (learners / "fig" / "sheet.png").write_bytes(b"\x89PNG sheet")
    (learners / "audit.md").write_text("---\ntitle: 'Audit'\nself-study: true\n---\n\nText.\n\n"
                                       "![Caption](fig/sheet.png){alt=\"a sheet\"}\n\n```python\nprint(1)\n```\n",
                                       encoding="utf-8")
    (learners / "reference.md").write_text("---\ntitle: 'Reference'\n---\n\n```python\nprint(2)\n```\n",
                                           encoding="utf-8")
    monkeypatch.setattr(notebook_tool, "EPISODES", tmp_path / "episodes")
    monkeypatch.setattr(notebook_tool, "LEARNERS", learners)
    monkeypatch.setattr(notebook_tool, "NOTEBOOKS", notebooks)
    assert notebook_tool.self_study_pages() == [learners / "audit.md"]
    assert notebook_tool.main([]) == 0 and notebook_tool.main(["--check"]) == 0
    made = sorted(p.relative_to(notebooks).as_posix() for p in notebooks.rglob("*") if p.is_file())
    assert made == ["fig/sheet.png", "self-study/audit.ipynb"]
    cells = _cells(notebooks / "self-study" / "audit.ipynb")
    text = "".join(_source(c) for c in cells)
    assert "![a sheet](../fig/sheet.png)" in text and "Self-study" in text and "learners/audit.md" in text
    assert [_source(c) for c in cells if c["cell_type"] == "code"] == ["print(1)"]
    (learners / "audit.md").write_text((learners / "audit.md").read_text().replace("print(1)", "print(3)"))
    assert notebook_tool.main(["--check"]) == 1
