#!/usr/bin/env python3
"""Generate notebooks/NAME.ipynb from episodes/NAME.md, the lesson's single source.

    python tools/notebooks.py           # write every notebook, the handouts and notebooks/fig/
    python tools/notebooks.py --check   # exit 1 if a notebook, handout or figure differs from its episode

jupytext reads the Workbench Markdown (format ``md:markdown``: told, not guessed, since a
guess sees the ``:::`` divs and asks for pandoc). The ``:::`` divs then become:

- for learners (``notebooks/``): bold headings; each solution (and hint) under a heading of its
  own, "Solution", that JupyterLab shows collapsed (``jp-MarkdownHeadingCollapsed``): one click
  opens its prose, its code and, once run, its output together, and Run All runs its code.
  The episode's text after a challenge starts with a heading, which ends the folded section
  (one is added, "SECTION (continued)", where the text has none); instructor notes left out;
- for the site (``tools/site.py``): the same, but instructor notes stay, as a labelled block;
- for the live-coding handouts (``notebooks/handouts/``): challenge text without its solution
  (one empty code cell where a solution's code was, except a solution cell marked "Show, do not
  type": a reveal, kept filled in so that learners run it once they have predicted), and every
  code cell empty except the set-up cells and the cells to show, not type.

Three comments among a code cell's first lines mark it (the Workbench's pandoc reads a fence's
info string as one word, so tags cannot go there): ``# Set-up: ...`` tags it ``setup``,
``# Show, do not type: WHAT`` tags it ``show`` (the handouts keep its code; the instructor
notes list WHAT), and ``# This cell is meant to fail with a TypeError: ...`` makes the
notebooks and handouts run it under ``%%expect_error TypeError`` (helpers/solutions.py): the
traceback shows, and Run All goes on. The magic needs no line of its own: importing ``helpers``
registers it (a set-up cell that does is added only when no cell before imports helpers). The
site's pages tag such a cell ``raises-exception`` instead, so that they show the code as written.

The output markers and the blocks that ``tools/outputs.py`` writes into an episode
(``<!-- output: ... -->``, ``<!-- begin output ... -->`` to ``<!-- end output -->``) are left
out: notebooks and handouts have no outputs; so are the links blocks of ``tools/links.py``.

Self-study pages (``learners/NAME.md`` whose front matter says ``self-study: true``) are
lessons outside the workshop's schedule, written like episodes: each becomes
``notebooks/self-study/NAME.ipynb`` (no handout), run by the tests like every notebook.

Figures travel with the notebooks: every image an episode shows (``fig/NAME.png``) is copied to
``notebooks/fig/``, the folder JupyterLab serves, and the handouts link ``../fig/NAME.png``.
Outputs are left empty.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
EPISODES = ROOT / "episodes"
LEARNERS = ROOT / "learners"
NOTEBOOKS = ROOT / "notebooks"
HANDOUTS = "handouts"
SELF_STUDY = "self-study"
FIGURES = "fig"

OPEN_DIV = re.compile(r"^:{3,}\s*\{?\.?([\w-]+)\}?\s*$")
CLOSE_DIV = re.compile(r"^:{3,}\s*$")
SETUP_MARK = re.compile(r"^#\s*set-up\b", re.IGNORECASE)
SHOW_MARK = re.compile(r"^#\s*show, do not type\b", re.IGNORECASE)
FAIL_MARK = re.compile(r"^#.*\bmeant to fail\b", re.IGNORECASE)
# the exception type a failing cell's marker names: "# This cell is meant to fail with a TypeError: ..."
FAIL_TYPE = re.compile(r"\bmeant to fail with an? ([A-Za-z_][\w.]*(?:Error|Exception))\b", re.IGNORECASE)
FIGURE = re.compile(r"!\[(?P<caption>[^\]]*)\]\((?P<src>[^)]+)\)\{alt=(?P<quote>['\"])(?P<alt>.*?)(?P=quote)\}")
# the images a Markdown cell shows: ![alt](src) and <img src="...">
IMAGE_SOURCES = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)|<img[^>]*\bsrc=[\"']([^\"']+)")
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|/|#)", re.IGNORECASE)   # http:, data:, attachment:, ...
HEADINGS = {
    "questions": "**Questions**", "objectives": "**Objectives**", "keypoints": "## Key points",
    "challenge": "---\n\n**Challenge**", "solution": "**Solution**", "callout": "**Callout**",
    "instructor": "**Instructor note**", "discussion": "**Discussion**", "prereq": "**Prerequisites**",
    "checklist": "**Checklist**", "spoiler": "**More**", "hint": "**Hint**", "testimonial": "**Testimonial**",
}
# divs whose content stays closed until clicked: prose in <details>, code cells collapsed
FOLDED = {"solution": "Solution", "hint": "Hint", "spoiler": "More"}
LEARNER, SITE, HANDOUT = "learner", "site", "handout"
GENERATED = "Generated from"
EXPECT_ERROR_MAGIC = "%%expect_error"
#: JupyterLab 4 opens a notebook with the cells under a heading cell holding this metadata hidden.
HEADING_COLLAPSED = "jp-MarkdownHeadingCollapsed"
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
IMPORTS_HELPERS = re.compile(r"^\s*(?:from\s+helpers[\s.]|import\s+helpers\b)", re.MULTILINE)
LOAD_MAGICS = ("# Set-up: run this cell; nothing here to type along.\n"
               "import helpers  # lets a cell below show an error it is meant to raise (%%expect_error)")
# What tools/outputs.py writes into an episode, under a code cell: left out of every notebook.
OUTPUT_MARKER = re.compile(r"^<!--\s*output:(?P<spec>.*?)-->\s*$")
OUTPUT_BEGIN = re.compile(r"^<!-- begin output (?P<hash>[0-9a-f]{8}) (?P<model>[\w.-]+)\b.*-->\s*$")
OUTPUT_END = "<!-- end output -->"
# What tools/links.py writes (links to the notebook, Binder, the executed page): not in notebooks either.
LINKS_BEGIN = re.compile(r"^\s*<!-- begin links [\w-]+\b.*-->\s*$")
LINKS_END = "<!-- end links -->"


def episodes() -> List[Path]:
    return sorted(EPISODES.glob("[0-9]*.md"))


def self_study_pages() -> List[Path]:
    """The learners' pages that are lessons of their own, outside the schedule (``self-study: true``)."""
    return sorted(path for path in LEARNERS.glob("*.md")
                  if re.search(r"^self-study:\s*true\s*$", _front(path), re.MULTILINE | re.IGNORECASE))


def _front(path: Path) -> str:
    """The front matter of a Markdown file, as text ("" when it has none)."""
    text = path.read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n", text, re.DOTALL)
    return match.group(1) if match else ""


def is_self_study(path: Path) -> bool:
    return path.resolve().parent == LEARNERS.resolve()


def leading_comments(code: str) -> List[str]:
    """The comment lines a code cell starts with, where its markers are.

    >>> leading_comments("# Set-up: run it.\\n# more\\nx = 1  # not this")
    ['# Set-up: run it.', '# more']
    """
    lines = code.lstrip().split("\n")
    return lines[:next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))]


def strip_generated(text: str) -> str:
    """An episode without its output markers and generated blocks (tools/outputs.py, tools/links.py).

    >>> strip_generated("a\\n<!-- output: text -->\\n<!-- begin output 0123abcd x: y -->\\nz\\n<!-- end output -->\\nb")
    'a\\nb'
    """
    kept, inside = [], ""
    for line in text.split("\n"):
        if inside:
            inside = "" if line.strip() == inside else inside
            continue
        if OUTPUT_BEGIN.match(line) or LINKS_BEGIN.match(line):
            inside = OUTPUT_END if OUTPUT_BEGIN.match(line) else LINKS_END
            continue
        if not OUTPUT_MARKER.match(line):
            kept.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept))


def plain_figures(text: str) -> str:
    """Workbench's ``![caption](src){alt='...'}`` as Markdown's ``![alt](src)`` and a caption line."""
    return FIGURE.sub(lambda m: f"![{m['alt']}]({m['src']})\n\n*Figure: {m['caption']}*", text)


def image_sources(markdown: str) -> List[str]:
    """The local images a Markdown text shows (``![..](src)`` and ``<img src=..>``), in order.

    >>> image_sources('![a dog](fig/dog.png) and <img src="https://x.org/c.png">')
    ['fig/dog.png']
    """
    found = [a or b for a, b in IMAGE_SOURCES.findall(markdown)]
    return [src for src in found if not EXTERNAL.match(src)]


def convert_divs(lines: List[str], stack: List[str]) -> List[str]:
    """Drop ``:::`` fences, keeping track of open divs in ``stack``; label each div once.

    A div that opens with its own heading (``## Challenge 1: ...``) keeps that heading; others
    get a bold label such as **Callout**. Used for the site's plain pages (set-up, reference).
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
            label = _label(pending, line)
            if label:
                result.extend([label, ""])
            pending = None
        result.append(line)
    if pending is not None:
        result.append(HEADINGS.get(pending, f"**{pending.title()}**"))
    return result


def _label(div: str, first_line: str) -> str:
    """The bold label a div gets, or only a rule (challenges) when it opens with a heading."""
    label = HEADINGS.get(div, f"**{div.title()}**")
    if first_line.lstrip().startswith("#"):
        label = "---" if label.startswith("---") else ""
    return label


@dataclass
class Part:
    """A run of Markdown, or one code cell, of an episode, with the div it sits in.

    ``fold`` is the innermost folded div (``solution``, ``hint``, ...) or ``instructor``, or "";
    ``group`` numbers that div, so that the parts of one solution can be found together.
    """

    kind: str                      # "markdown" or "code"
    text: str
    fold: str = ""
    group: int = 0
    tags: List[str] = field(default_factory=list)
    section: str = ""              # the last heading outside any div, up to the end of this part


def _context(stack: List[str]) -> str:
    for div in reversed(stack):
        if div in FOLDED or div == "instructor":
            return div
    return ""


def parse_episode(path: Path) -> Tuple[dict, List[Part]]:
    """(front matter, parts): the episode cut where code cells and folded divs begin and end."""
    source = jupytext.reads(strip_generated(path.read_text(encoding="utf-8")), fmt="md:markdown")
    meta: dict = {}
    parts: List[Part] = []
    stack: List[str] = []
    groups: List[int] = []          # the group number of each open div
    counter = 0

    section = [""]

    def add_line(line: str) -> None:
        fold = _context(stack)
        group = next((g for d, g in zip(reversed(stack), reversed(groups)) if d == fold), 0) if fold else 0
        heading = HEADING.match(line) if not stack else None
        if heading:
            section[0] = heading.group(2)
        if parts and parts[-1].kind == "markdown" and (parts[-1].fold, parts[-1].group) == (fold, group):
            parts[-1].text += "\n" + line
            parts[-1].section = section[0]
        else:
            parts.append(Part("markdown", line, fold, group, section=section[0]))

    for cell in source.cells:
        if cell.cell_type == "raw" and cell.source.startswith("---") and not meta:
            meta = _front_matter(cell.source)
            continue
        if cell.cell_type == "code":
            tags = list(cell.metadata.get("tags", []))
            for mark, tag in ((SETUP_MARK, "setup"), (SHOW_MARK, "show"), (FAIL_MARK, "raises-exception")):
                if any(mark.match(line) for line in leading_comments(cell.source)):
                    tags.append(tag)
            fold = _context(stack)
            group = next((g for d, g in zip(reversed(stack), reversed(groups)) if d == fold), 0) if fold else 0
            parts.append(Part("code", cell.source, fold, group, tags, section[0]))
            continue
        pending: Optional[str] = None
        for line in cell.source.splitlines():
            if CLOSE_DIV.match(line):
                if stack:
                    stack.pop()
                    groups.pop()
                continue
            opened = OPEN_DIV.match(line)
            if opened:
                counter += 1
                stack.append(opened.group(1))
                groups.append(counter)
                pending = opened.group(1)
                continue
            if pending is not None and line.strip():
                if pending not in FOLDED and pending != "instructor":   # folded divs are labelled later
                    label = _label(pending, line)
                    if label:
                        add_line(label)
                        add_line("")
                pending = None
            add_line(line)
        add_line("")                 # a cell boundary is a paragraph boundary
    if stack:
        raise ValueError(f"{path.name}: fenced divs left open at the end: {stack}")
    for part in parts:
        if part.kind == "markdown":
            part.text = plain_figures(part.text.strip())
    return meta, [p for p in parts if p.kind == "code" or p.text]


def _front_matter(text: str) -> dict:
    fields = {}
    for line in text.strip().strip("-").splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            fields[key.strip()] = value.strip().strip("\"'")
    return fields


def _details(summary: str, text: str) -> str:
    """Markdown that JupyterLab and nbconvert show closed until clicked (blank lines keep the
    Markdown inside working)."""
    return f"<details>\n<summary><b>{summary}</b></summary>\n\n{text}\n\n</details>"


def headings(markdown: str) -> List[Tuple[int, str]]:
    """(level, text) of each Markdown heading outside code fences.

    >>> headings("## Challenge 1: shapes\\n```\\n# a comment\\n```\\ntext\\n### Part a")
    [(2, 'Challenge 1: shapes'), (3, 'Part a')]
    """
    found, fenced = [], False
    for line in markdown.split("\n"):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and HEADING.match(line):
            match = HEADING.match(line)
            found.append((len(match.group(1)), match.group(2)))
    return found


class _Folding:
    """Where a learner's notebook puts its collapsed sections.

    A folded div (a solution, a hint) starts with a heading cell one level below the last heading
    shown, which JupyterLab opens collapsed: everything up to the next heading of that level or
    higher stays hidden until clicked. So the first cell after the div must start such a
    heading: where the episode goes on without one, "SECTION (continued)" is added.
    """

    def __init__(self) -> None:
        self.level = 1                    # the last heading shown outside folds (the title: 1)
        self.section = ""                 # the last heading outside challenges, for "(continued)"
        self.open: Optional[Tuple[int, int]] = None      # (group, heading level) of the open fold

    def saw(self, part: Part) -> None:
        for level, _ in headings(part.text):
            self.level = level
        self.section = part.section

    def before(self, part: Part, cells: List[nbformat.NotebookNode]) -> None:
        """Close the open fold before ``part`` if it is not in it, and open one if ``part`` starts one."""
        if self.open and not (part.fold in FOLDED and part.group == self.open[0]):
            level = self.open[1]
            closes = part.fold in FOLDED or (part.kind == "markdown" and not part.fold and any(
                found <= level for found, _ in headings(part.text)))      # a fold's heading closes it too
            if not closes:
                title = f"{self.section} (continued)" if self.section else "Back to the episode"
                cells.append(nbformat.v4.new_markdown_cell(f"{'#' * max(1, level - 1)} {title}"))
                self.level = max(1, level - 1)
            self.open = None
        if part.fold in FOLDED and self.open is None:
            level = min(self.level + 1, 6)
            cells.append(nbformat.v4.new_markdown_cell(
                f"{'#' * level} {FOLDED[part.fold]}",
                metadata={HEADING_COLLAPSED: True, "tags": [part.fold]}))
            self.open = (part.group, level)


def render(path: Path, target: str = LEARNER) -> nbformat.NotebookNode:
    """The notebook for one episode, without outputs, for learners, the site or a handout."""
    meta, parts = parse_episode(path)
    self_study = is_self_study(path)
    timing = ("*Self-study: outside the workshop's schedule.*" if self_study else
              f"*Teaching: {meta.get('teaching', '?')} min · Exercises: {meta.get('exercises', '?')} min*")
    source = f"{path.parent.name}/{path.name}"
    cells = [nbformat.v4.new_markdown_cell(
        f"# {meta.get('title', path.stem)}\n\n{timing}\n\n"
        f"<!-- {GENERATED} {source} by tools/notebooks.py: edit the {'page' if self_study else 'episode'}, "
        f"not this notebook. -->")]
    if target == HANDOUT:
        cells.append(nbformat.v4.new_markdown_cell(
            "*Live-coding handout: type the code along with your instructor. Cells that start with "
            "\"Show, do not type\" are filled in: run them as your instructor shows them. The full "
            "notebook, with every cell filled in, is one folder up.*"))
    seen: Dict[int, int] = {}        # group -> how many of its Markdown parts were shown so far
    folding = _Folding()             # learners: the collapsed "Solution" sections
    for part in parts:
        same_group = [p for p in parts if p.group == part.group] if part.fold else []
        if part.fold == "instructor" and target != SITE:
            continue
        if part.fold == "solution" and target == HANDOUT:
            if part.kind == "code" and "show" in part.tags:     # a reveal: filled in, to run after predicting
                cells.append(nbformat.v4.new_code_cell(part.text, metadata={"tags": ["show", "solution"]}))
            elif part is next((p for p in same_group if p.kind == "code"), None):
                cells.append(nbformat.v4.new_code_cell("", metadata={"tags": ["exercise"]}))
            continue
        if target == LEARNER:
            folding.before(part, cells)
        if part.kind == "code":
            metadata: dict = {}
            tags = list(part.tags)
            source = part.text
            if part.fold in FOLDED:
                tags.append(part.fold)
            if "raises-exception" in tags and target != SITE:
                tags.remove("raises-exception")           # the magic shows the error, Run All goes on
                source = _expect_error(part.text, source)
            if target == HANDOUT and not {"setup", "show"} & set(tags):
                source = ""
            if tags:
                metadata["tags"] = tags
            cells.append(nbformat.v4.new_code_cell(source, metadata=metadata))
            continue
        text = part.text
        if target == HANDOUT or self_study:         # one folder down from notebooks/fig/
            text = _relink_figures(text, "../")
        if part.fold in FOLDED and target != LEARNER:
            shown = seen.get(part.group, 0)
            seen[part.group] = shown + 1
            summary = FOLDED[part.fold] + (" (continued)" if shown or part is not same_group[0] else "")
            text = _details(summary, text)
        elif part.fold == "instructor":
            text = "<div class='instructor-note'>\n\n**Instructor note**\n\n" + text + "\n\n</div>"
        elif target == LEARNER and not part.fold:
            folding.saw(part)
        cells.append(nbformat.v4.new_markdown_cell(text))
    if target in (LEARNER, HANDOUT):
        _load_magics(cells)
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    prefix = "handout" if target == HANDOUT else ("self-study-" if self_study else "") + path.stem[:40]
    for index, cell in enumerate(notebook.cells):  # stable ids, so regeneration is reproducible
        cell.id = f"{prefix}-{index:03d}"
    return notebook


def _expect_error(cell: str, source: str) -> str:
    """``source`` run under ``%%expect_error``, with the type that ``cell``'s marker names.

    >>> _expect_error("# This cell is meant to fail with a TypeError: see.\\nf()", "f()")
    '%%expect_error TypeError\\nf()'
    """
    named = next(filter(None, map(FAIL_TYPE.search, leading_comments(cell))), None)
    magic = EXPECT_ERROR_MAGIC + (f" {named.group(1)}" if named else "")
    return f"{magic}\n{source}"


def episode_code(source: str) -> str:
    """A notebook cell's code as the episode writes it, without the magic line the generator adds.

    >>> episode_code("%%expect_error TypeError\\n# This cell is meant to fail.\\nf()")
    '# This cell is meant to fail.\\nf()'
    """
    first, _, rest = source.partition("\n")
    return rest if first.startswith(EXPECT_ERROR_MAGIC) else source


def _load_magics(cells: List[nbformat.NotebookNode]) -> None:
    """``%%expect_error`` is registered by importing helpers: if no code cell before the first that
    uses it imports helpers, add a set-up cell that does, first of all."""
    first = next((i for i, c in enumerate(cells) if c.cell_type == "code"
                  and c.source.startswith(EXPECT_ERROR_MAGIC)), None)
    if first is None or any(c.cell_type == "code" and IMPORTS_HELPERS.search(c.source) for c in cells[:first]):
        return
    at = next(i for i, c in enumerate(cells) if c.cell_type == "code")
    cells.insert(at, nbformat.v4.new_code_cell(LOAD_MAGICS, metadata={"tags": ["setup"]}))


def episode_to_notebook(path: Path) -> nbformat.NotebookNode:
    """The learners' notebook for one episode, without outputs."""
    return render(path, LEARNER)


def _relink_figures(text: str, prefix: str) -> str:
    for src in set(image_sources(text)):
        text = text.replace(f"]({src}", f"]({prefix}{src}").replace(f'src="{src}"', f'src="{prefix}{src}"')
    return text


def figures(path: Path) -> Dict[Path, Path]:
    """{copy in notebooks/: source file} for every local image the episode shows.

    An image must live beside the episode (``fig/NAME.png``), so that its copy lands inside
    notebooks/, the folder JupyterLab serves.
    """
    found = {}
    for part in parse_episode(path)[1]:
        if part.kind != "markdown":
            continue
        for src in image_sources(part.text):
            source = (path.parent / src).resolve()
            target = (NOTEBOOKS / src).resolve()
            if not source.is_file():
                raise ValueError(f"{path.name}: the image {src} does not exist (looked for {source})")
            if NOTEBOOKS.resolve() not in target.parents or target.parent == NOTEBOOKS.resolve():
                raise ValueError(f"{path.name}: the image {src} must be in a folder beside the episode, "
                                 "such as fig/, so that its copy stays inside notebooks/")
            found[target] = source
    return found


def notebook_text(notebook: nbformat.NotebookNode) -> str:
    return nbformat.writes(notebook) + "\n"


def notebook_path(path: Path) -> Path:
    """Where the learners' notebook of an episode or a self-study page goes."""
    return NOTEBOOKS / (SELF_STUDY if is_self_study(path) else "") / f"{path.stem}.ipynb"


def outputs(path: Path) -> Dict[Path, bytes]:
    """{target path: content} for one episode (its notebook, its handout and its figures) or one
    self-study page (its notebook and its figures)."""
    result = {notebook_path(path): notebook_text(render(path, LEARNER)).encode()}
    if not is_self_study(path):
        result[NOTEBOOKS / HANDOUTS / f"{path.stem}.ipynb"] = notebook_text(render(path, HANDOUT)).encode()
    for target, source in figures(path).items():
        result[target] = source.read_bytes()
    return result


def _generated() -> List[Path]:
    """What an earlier run wrote: notebooks and handouts that say so, and notebooks/fig/.
    A learner's own notebook in notebooks/ is not touched."""
    found = [p for p in (NOTEBOOKS / FIGURES).rglob("*") if p.is_file()] if (NOTEBOOKS / FIGURES).is_dir() else []
    for path in [*NOTEBOOKS.glob("*.ipynb"), *(NOTEBOOKS / HANDOUTS).glob("*.ipynb"),
                 *(NOTEBOOKS / SELF_STUDY).glob("*.ipynb")]:
        if GENERATED in path.read_text(encoding="utf-8", errors="replace"):
            found.append(path)
    return found


def main(argv: List[str]) -> int:
    check = "--check" in argv
    stale = []
    wanted: Dict[Path, bytes] = {}
    for path in episodes() + self_study_pages():
        wanted.update(outputs(path))
    leftovers = [p for p in _generated() if p.resolve() not in {t.resolve() for t in wanted}]
    if check:
        stale = [str(t.relative_to(NOTEBOOKS)) for t, data in wanted.items()
                 if not t.exists() or t.read_bytes() != data]
        stale += [f"{p.relative_to(NOTEBOOKS)} (no episode makes it)" for p in leftovers]
        if stale:
            print("out of sync with their episodes (run `python lesson.py notebooks`): " + ", ".join(stale))
            return 1
        return 0
    for target, data in wanted.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_bytes() != data:
            target.write_bytes(data)
            print(f"wrote {target}")
    for leftover in leftovers:      # a figure no episode shows, a notebook whose episode was renamed
        leftover.unlink()
        print(f"removed {leftover}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
