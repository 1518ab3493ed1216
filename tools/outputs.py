#!/usr/bin/env python3
"""Write what marked code cells print and draw into their episode, from the executed notebooks.

    python tools/outputs.py                     # every episode and self-study page (python lesson.py outputs)
    python tools/outputs.py --only 01-images-as-tensors
    python tools/outputs.py --check             # exit 1 if a block is stale or a figure missing (runs nothing)
    LESSON_MODEL=resnet50 python tools/outputs.py   # before a workshop, next to `python lesson.py preflight`

The Workbench pages show no code running: an author marks the cells whose printout or figure the
text talks about, with an HTML comment on the line after the cell's closing fence::

    ```python
    plt.imshow(rgb_image)
    plt.show()
    ```

    <!-- output: figure alt="A bulldog sits above a tabby cat lying across the photo's bottom" -->

``text`` asks for the printout (an ``output`` block), ``figure`` for each figure the cell draws
(a PNG in ``fig/``, with the author's alt text, and a caption naming the model that made it);
``text figure`` for both. ``caption="..."`` starts the caption; ``lines=5`` or ``lines=3-8``
keeps those lines of the printout; ``varies`` lets the tests accept a printout whose numbers moved
by at most 0.05 (5 points of a percentage), for cells that train a model on a CPU. This tool runs the learners' notebook (or takes the run a
recent test run kept, when the notebook and the helpers are unchanged since: see
``runall.saved_run``) and writes, under the marker, a block between two comments::

    <!-- begin output 3f2a9c1e efficientnet_lite0: ... -->
    ...
    <!-- end output -->

``3f2a9c1e`` is a hash of the cell's code when the block was written: ``--check`` (and
tests/test_outputs.py) fail when the cell has changed since, when a figure file is missing or
over 150 KB, or when the pages were made with different models. tools/notebooks.py leaves the
markers and blocks out of the notebooks and handouts. Lines that start with ``NOTICE:`` (the
stand-in's notice) are left out of printouts; a figure drawn by a widget (the explorer) is its
picture as first drawn.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import os
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import notebooks as notebook_tool  # noqa: E402

#: The models whose outputs a page may show, as a caption names them.
MODEL_NAMES = {"efficientnet_lite0": "the offline stand-in, EfficientNet-Lite0", "resnet50": "ResNet-50",
               "resnet50_untrained": "ResNet-50 with random weights (for timing tests only)"}
STAND_IN = "efficientnet_lite0"
MAX_FIGURE_BYTES = 150_000
FENCE = re.compile(r"^(`{3,})\s*\{?\.?([\w+-]*)\}?\s*$")
MARKER, BEGIN, END = notebook_tool.OUTPUT_MARKER, notebook_tool.OUTPUT_BEGIN, notebook_tool.OUTPUT_END
BEGIN_TEXT = ("<!-- begin output {hash} {model}: written by `python lesson.py outputs` from the executed "
              "notebook; edit the cell and its output: line, not this block -->")
TOKEN = re.compile(r'(?P<key>\w+)="(?P<value>[^"]*)"|(?P<key2>\w+)=(?P<value2>[^\s"]+)|"(?P<quoted>[^"]*)"'
                   r'|(?P<word>\S+)')
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
NOTICE = re.compile(r"^NOTICE:")
FIGURE = re.compile(r'^!\[(?P<caption>[^\]]*)\]\((?P<src>[^)\s]+)\)\{alt="(?P<alt>[^"]*)"\}\s*$')
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


# ---------------------------------------------------------------- reading a page

@dataclass(frozen=True)
class Spec:
    """What a marker asks for."""

    text: bool
    figure: bool
    alt: str = ""
    caption: str = ""
    lines: Optional[Tuple[int, int]] = None     # first and last line kept, counted from 1
    varies: bool = False                        # its numbers vary a little between runs (CPU training)


#: The widest line of an output block: the Workbench shows about 78 characters of a code column.
WIDTH = 79
NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)?\.?\d+(?:[eE][-+]?\d+)?")


def same_printout(written: List[str], now: List[str], varies: bool = False, tolerance: float = 0.05) -> bool:
    """Whether a block's printout is what the cell prints now: line for line, or, for a marker
    that says ``varies``, the same words with every number written alike (a decimal point in
    both or neither, as many decimals give or take one, an exponent in both or neither) and
    within ``tolerance`` of the one written (5 points of a percentage; 5% of a number with an
    exponent).

    >>> same_printout(["acc: 0.97", "near: 98%"], ["acc: 0.98", "near: 100%"], varies=True)
    True
    >>> same_printout(["acc: 0.53"], ["acc: 0.5299999713897705"], varies=True)
    False
    >>> same_printout(["acc: 0.97"], ["acc: 0.80"], varies=True), same_printout(["a 1"], ["b 1"], True)
    (False, False)
    """
    if not varies or len(written) != len(now):
        return written == now
    for old, new in zip(written, now):
        if NUMBER.split(old) != NUMBER.split(new):
            return False
        for a, b, after in zip(NUMBER.findall(old), NUMBER.findall(new), NUMBER.split(old)[1:]):
            if not _written_alike(a, b):
                return False
            x, y = float(a.replace(",", "")), float(b.replace(",", ""))
            if "e" in a.lower():
                allowed = tolerance * max(abs(x), abs(y))
            else:
                allowed = tolerance * (100.0 if after.lstrip().startswith("%") else 1.0)
            if abs(x - y) > allowed + 1e-9:
                return False
    return True


def _written_alike(a: str, b: str) -> bool:
    """Two numbers printed by the same format: no float printed in full where a rounded one was."""
    def form(number: str):
        mantissa, _, exponent = number.lower().partition("e")
        decimals = len(mantissa.partition(".")[2]) if "." in mantissa else None
        return decimals, bool(exponent)
    (da, ea), (db, eb) = form(a), form(b)
    if ea != eb:
        return False
    if ea:                                  # "%.3g" writes 1e-05 and 1.02e-05 alike
        return True
    if (da is None) != (db is None):
        return False
    return da is None or abs(da - db) <= 1


def parse_spec(spec: str) -> Spec:
    """The marker's words: ``text``, ``figure``, ``alt="..."`` (or a quoted text after ``figure``),
    ``caption="..."``, ``lines=N`` or ``lines=A-B``, and ``varies`` for a printout whose numbers
    change a little from run to run (a model trained on a CPU is not bit-for-bit reproducible).

    >>> parse_spec(' text figure "A dog" lines=2-3 ')
    Spec(text=True, figure=True, alt='A dog', caption='', lines=(2, 3), varies=False)
    """
    text = figure = varies = False
    alt = caption = ""
    lines: Optional[Tuple[int, int]] = None
    for match in TOKEN.finditer(spec):
        key, value = match["key"] or match["key2"], match["value"] if match["key"] else match["value2"]
        if key == "alt" or (match["quoted"] is not None and figure and not alt):
            alt = value if key else match["quoted"]
        elif key == "caption":
            caption = value
        elif key == "lines":
            found = re.fullmatch(r"(\d+)(?:-(\d+))?", value or "")
            if not found or int(found[1]) < 1:
                raise ValueError(f"lines={value}: give a number of lines (lines=5) or a range (lines=3-8)")
            lines = (1, int(found[1])) if found[2] is None else (int(found[1]), int(found[2]))
        elif match["word"] == "varies":
            varies = True
        elif match["word"] in ("text", "figure", "and", ","):
            text, figure = text or match["word"] == "text", figure or match["word"] == "figure"
        else:
            raise ValueError(f"{match.group(0)!r}: a marker says text and/or figure, then alt=\"...\", "
                             f"caption=\"...\" or lines=N")
    if not (text or figure):
        raise ValueError("say what to show: <!-- output: text -->, <!-- output: figure alt=\"...\" --> or both")
    if figure and not alt.strip():
        raise ValueError("a figure needs its alt text: <!-- output: figure alt=\"what the figure shows\" -->")
    for name, value in (("alt", alt), ("caption", caption)):
        if "[" in value or "]" in value:
            raise ValueError(f"{name} text may not hold [ or ] (they end the Markdown figure early)")
    return Spec(text, figure, alt.strip(), caption.strip(), lines, varies)


def cell_hash(code: str) -> str:
    """The short hash a block keeps of the cell's code (its lines, trailing spaces and blank lines aside).

    >>> cell_hash("print(1)\\n") == cell_hash("print(1)  \\n\\n")
    True
    """
    lines = [line.rstrip() for line in code.strip("\n").splitlines()]
    return hashlib.sha256("\n".join(lines).strip().encode("utf-8")).hexdigest()[:8]


@dataclass
class Marked:
    """A marked code cell of a page, and the block written under it (if any)."""

    cell: int                    # which ```python cell of the page, from 0
    code: str
    spec: Optional[Spec]         # None when the marker cannot be read (``problem`` says why)
    marker: int                  # the marker's line, from 0
    block: Optional[Tuple[int, int]] = None     # the block's first and last line
    block_hash: str = ""
    block_model: str = ""
    problem: str = ""


@dataclass
class Page:
    path: Path
    lines: List[str]
    cells: List[str]             # the code of every ```python cell, in order
    marked: List[Marked]
    problems: List[str]          # markers or blocks in the wrong place


def read_page(path: Path) -> Page:
    """The page's code cells, its markers, and the blocks written under them."""
    lines = path.read_text(encoding="utf-8").split("\n")
    cells: List[str] = []
    marked: List[Marked] = []
    problems: List[str] = []
    claimed = set()                      # lines of markers and blocks that belong to a cell
    at = 0
    while at < len(lines):
        fence = FENCE.match(lines[at])
        if not fence:
            at += 1
            continue
        close = next((i for i in range(at + 1, len(lines)) if lines[i].strip() == fence[1]), None)
        if close is None:
            problems.append(f"line {at + 1}: a code fence that never closes")
            break
        if fence[2] == "python":
            cells.append("\n".join(lines[at + 1:close]))
            marker = _next_filled(lines, close + 1)
            found = MARKER.match(lines[marker]) if marker is not None else None
            if found:
                claimed.add(marker)
                entry = Marked(len(cells) - 1, cells[-1], None, marker)
                try:
                    entry.spec = parse_spec(found["spec"])
                except ValueError as error:
                    entry.problem = f"line {marker + 1}: {error}"
                begin = _next_filled(lines, marker + 1)
                started = BEGIN.match(lines[begin]) if begin is not None else None
                if started:
                    end = next((i for i in range(begin, len(lines)) if lines[i].strip() == END), None)
                    if end is None:
                        entry.problem = f"line {begin + 1}: a generated block without its end line {END}"
                    else:
                        entry.block, entry.block_hash, entry.block_model = (begin, end), started["hash"], \
                            started["model"]
                        claimed.update(range(begin, end + 1))
                        close = end
                marked.append(entry)
        at = close + 1
    for number, line in enumerate(lines):
        if number not in claimed and (MARKER.match(line) or BEGIN.match(line)):
            problems.append(f"line {number + 1}: {line[:60]!r} does not follow a ```python cell's closing fence")
    return Page(path, lines, cells, marked, problems)


def _next_filled(lines: List[str], start: int) -> Optional[int]:
    return next((i for i in range(start, len(lines)) if lines[i].strip()), None)


# ---------------------------------------------------------------- checking

def page_problems(page: Page) -> List[str]:
    """What is stale or missing on one page: each a line naming it and what to run."""
    name = page.path.name
    found = [f"{name}: {problem}" for problem in page.problems]
    for entry in page.marked:
        where = f"{name}, cell {entry.cell + 1} (line {entry.marker + 1})"
        if entry.problem:
            found.append(f"{name}: {entry.problem}")
            continue
        if entry.block is None:
            found.append(f"{where}: no output written yet: run `python lesson.py outputs`")
            continue
        if entry.block_hash != cell_hash(entry.code):
            found.append(f"{where}: the cell changed since its output was written: run `python lesson.py outputs`")
        block = page.lines[entry.block[0]:entry.block[1] + 1]
        if entry.spec.text and not any(line.startswith("```output") for line in block):
            found.append(f"{where}: the marker asks for the printout, the block has none: run `python lesson.py outputs`")
        figures = [match["src"] for line in block for match in [FIGURE.match(line)] if match]
        if entry.spec.figure and not figures:
            found.append(f"{where}: the marker asks for a figure, the block has none: run `python lesson.py outputs`")
        for src in figures:
            file = page.path.parent / src
            if not file.is_file():
                found.append(f"{where}: the figure {src} is missing: run `python lesson.py outputs`")
            elif file.stat().st_size > MAX_FIGURE_BYTES:
                found.append(f"{where}: {src} is {file.stat().st_size // 1000} KB, over {MAX_FIGURE_BYTES // 1000} KB")
    return found



def lesson_pages() -> List[Path]:
    return notebook_tool.episodes() + notebook_tool.self_study_pages()


def check(pages: Sequence[Path]) -> List[str]:
    """Every problem of every page, and one more when the pages' outputs come from different models."""
    problems: List[str] = []
    models: Dict[str, List[str]] = {}
    for path in pages:
        page = read_page(path)
        problems += page_problems(page)
        for entry in page.marked:
            if entry.block_model:
                models.setdefault(entry.block_model, []).append(path.name)
    if len(models) > 1:
        made = "; ".join(f"{model}: {', '.join(sorted(set(names)))}" for model, names in sorted(models.items()))
        problems.append(f"the pages' outputs were made with different models ({made}): run `python lesson.py "
                        f"outputs` with one LESSON_MODEL for all of them")
    return problems


# ---------------------------------------------------------------- what a cell printed and drew

def printout(outputs: Sequence[dict], spec: Spec) -> List[str]:
    """The lines a cell printed (its streams, its result's text, an error's traceback), as a reader
    sees them: colours and progress-bar rewrites gone, NOTICE lines left out, ``spec.lines`` kept,
    lines wider than ``WIDTH`` wrapped."""
    parts: List[str] = []
    for output in outputs:
        kind = output.get("output_type")
        data = output.get("data", {})
        if kind == "stream":
            parts.append(output.get("text", ""))
        elif kind == "execute_result" and "text/plain" in data and WIDGET_VIEW not in data \
                and "image/png" not in data:
            parts.append(data["text/plain"] + "\n")
        elif kind == "error":
            parts.append("\n".join(output.get("traceback", [])) + "\n")
    lines = [ANSI.sub("", line).split("\r")[-1].rstrip() for line in "".join(parts).split("\n")]
    lines = [line for line in lines if not NOTICE.match(line)]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    if spec.lines:
        first, last = spec.lines
        kept = lines[first - 1:last]
        if first > 1:
            kept.insert(0, "...")
        if last < len(lines):
            kept.append("...")
        lines = kept
    # a line wider than the page's code column wraps, as JupyterLab wraps it on screen (counted in
    # bytes too, as some tools count it: "·" is two)
    return [piece for line in lines
            for piece in (textwrap.wrap(line, WIDTH - (len(line.encode()) - len(line)), break_on_hyphens=False)
                          if len(line.encode()) > WIDTH else [line])]


def drawn_figures(outputs: Sequence[dict], widget_state: Dict[str, dict]) -> List[bytes]:
    """The figures a cell drew, as image bytes: its PNG outputs, and the pictures in its widgets."""
    found: List[bytes] = []
    for output in outputs:
        data = output.get("data", {})
        if "image/png" in data:
            found.append(base64.b64decode(data["image/png"]))
        elif WIDGET_VIEW in data:
            found += _widget_pictures(widget_state, data[WIDGET_VIEW].get("model_id", ""))
    return found


def _widget_pictures(state: Dict[str, dict], model_id: str, depth: int = 0) -> List[bytes]:
    model = state.get(model_id.replace("IPY_MODEL_", ""))
    if model is None or depth > 20:
        return []
    if model.get("model_name") == "ImageModel":
        data = next((b["data"] for b in model.get("buffers", []) if b.get("path") == ["value"]), None)
        return [base64.b64decode(data)] if data else []
    return [picture for child in model.get("state", {}).get("children", [])
            for picture in _widget_pictures(state, child, depth + 1)]


def small_png(data: bytes, limit: int = MAX_FIGURE_BYTES) -> bytes:
    """The picture as a PNG of at most ``limit`` bytes: on white, optimised, then in 256 colours,
    then smaller, until it fits."""
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        flat = Image.new("RGB", image.size, "white")
        flat.paste(image, mask=image.getchannel("A"))
        image = flat
    image = image.convert("RGB")
    candidate = image
    while True:
        for version in (candidate, candidate.quantize(colors=256)):
            buffer = io.BytesIO()
            version.save(buffer, format="PNG", optimize=True)
            if buffer.tell() <= limit:
                return buffer.getvalue()
        candidate = candidate.resize((max(1, int(candidate.width * 0.85)), max(1, int(candidate.height * 0.85))),
                                     Image.LANCZOS)


def describe_model(model: str) -> str:
    """``efficientnet_lite0`` as a caption names it: "the offline stand-in, EfficientNet-Lite0"."""
    return MODEL_NAMES.get(model, model)


def caption(spec: Spec, model: str) -> str:
    """The figure's caption, naming the model the notebook ran with (true of any figure it drew,
    the model's maps and the plain photo alike).

    >>> caption(Spec(False, True, "a dog", "The photo."), "resnet50")
    'The photo. Notebook run with ResNet-50.'
    """
    start = (spec.caption or "What the cell above draws").rstrip(".")
    return f"{start}. Notebook run with {describe_model(model)}."


def block_lines(entry: Marked, model: str, text: List[str], figures: List[str]) -> List[str]:
    """The generated block for one cell: its printout, then its figures (``figures``: file names in fig/)."""
    lines = [BEGIN_TEXT.format(hash=cell_hash(entry.code), model=model), ""]
    if entry.spec.text:
        lines += ["```output", *text, "```", ""]
    for number, name in enumerate(figures, start=1):
        alt = entry.spec.alt + (f" (figure {number} of {len(figures)})" if len(figures) > 1 else "")
        lines += [f'![{caption(entry.spec, model)}](fig/{name}){{alt="{alt}"}}', ""]
    return lines + [END]


# ---------------------------------------------------------------- running and writing

def model_problem(model: str) -> Optional[str]:
    """Why ``model``'s outputs cannot be made here, or None."""
    if model not in MODEL_NAMES:
        return f"LESSON_MODEL={model} is not a model of the lesson: choose one of {', '.join(MODEL_NAMES)}"
    if model == "resnet50":
        from helpers.models import weights_problem

        problem = weights_problem()
        if problem:
            return (f"ResNet-50's weights cannot be used ({problem}): run `python -m helpers.setup` with internet "
                    f"(or with LESSON_DATA_MIRROR set to an instructor's copy) first")
    return None


def which_model() -> str:
    """LESSON_MODEL, else ResNet-50 when its weights are in torch's cache, else the stand-in."""
    if os.environ.get("LESSON_MODEL", "").strip():
        return os.environ["LESSON_MODEL"].strip()
    from helpers.models import resnet50_weights_path

    return "resnet50" if resnet50_weights_path().is_file() else STAND_IN


def executed(path: Path, model: str, reuse: bool = True):
    """The learners' notebook of ``path`` run with ``model`` (a recent test run's, when it can be reused)."""
    from runall import describe, run_all, run_all_report, saved_run

    notebook = notebook_tool.notebook_path(path)
    wanted = notebook_tool.notebook_text(notebook_tool.render(path, notebook_tool.LEARNER))
    if not notebook.is_file() or notebook.read_text(encoding="utf-8") != wanted:
        raise SystemExit(f"{notebook.relative_to(ROOT)} is out of sync with {path.name}: run "
                         f"`python lesson.py notebooks` first")
    run = saved_run(notebook, model, ROOT, [ROOT / "helpers", ROOT / "data"]) if reuse else None
    if run is not None:
        print(f"{path.name}: reusing the test run's execution with {model}", flush=True)
    else:
        print(f"{path.name}: running {notebook.relative_to(ROOT)} with {model} ...", flush=True)
        run = run_all(notebook, model)
    if run.aborted:
        raise SystemExit(run_all_report(run))
    if run.failed():
        raise SystemExit(f"{notebook.name}: these cells fail with {model}; fix them first:\n"
                         f"{describe(run, run.failed())}")
    if model != STAND_IN and any(NOTICE.match(line) and "stand-in" in line for line in run.printed().splitlines()):
        raise SystemExit(f"{notebook.name} fell back to the stand-in instead of {model}: its outputs would be "
                         f"labelled wrongly")
    return run


def notebook_cells(run, page: Page) -> Dict[int, dict]:
    """{page cell number: the executed notebook cell that runs its code}, matched by code, in order."""
    code = [cell for cell in run.notebook.cells if cell.cell_type == "code"]
    found: Dict[int, dict] = {}
    at = 0
    for number, source in enumerate(page.cells):
        wanted = source.strip()
        for index in range(at, len(code)):
            if notebook_tool.episode_code(code[index].source).strip() == wanted:
                found[number], at = code[index], index + 1
                break
    return found


def write_page(path: Path, model: str, reuse: bool = True) -> bool:
    """Write the blocks of every marked cell of ``path`` and their figures; remove figures no block
    shows any more. Returns whether the page changed."""
    page = read_page(path)
    problems = [p for entry in page.marked for p in [entry.problem] if p] + page.problems
    if problems:
        raise SystemExit(f"{path.name}: " + "; ".join(problems))
    figures_folder = path.parent / notebook_tool.FIGURES
    prefix = f"{path.stem}-output-"
    kept: set = set()
    lines = list(page.lines)
    if page.marked:
        run = executed(path, model, reuse)
        cells = notebook_cells(run, page)
        state = run.notebook.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
        for entry in reversed(page.marked):           # from the end, so that line numbers above stay right
            cell = cells.get(entry.cell)
            if cell is None:
                raise SystemExit(f"{path.name}, cell {entry.cell + 1}: not in the learners' notebook "
                                 f"(an instructor note's code?); only their cells can be marked")
            text = printout(cell.outputs, entry.spec) if entry.spec.text else []
            if entry.spec.text and not text:
                raise SystemExit(f"{path.name}, cell {entry.cell + 1}: marked `text`, but it printed nothing")
            pictures = drawn_figures(cell.outputs, state) if entry.spec.figure else []
            if entry.spec.figure and not pictures:
                raise SystemExit(f"{path.name}, cell {entry.cell + 1}: marked `figure`, but it drew none")
            names = []
            for number, picture in enumerate(pictures, start=1):
                name = f"{prefix}{cell_hash(entry.code)}{f'-{number}' if len(pictures) > 1 else ''}.png"
                figures_folder.mkdir(exist_ok=True)
                data = small_png(picture)
                target = figures_folder / name
                if not target.is_file() or target.read_bytes() != data:
                    target.write_bytes(data)
                names.append(name)
                kept.add(name)
            _, end = entry.block if entry.block else (entry.marker + 1, entry.marker)
            lines[entry.marker + 1:end + 1] = [""] + block_lines(entry, model, text, names)
    for stale in figures_folder.glob(f"{prefix}*.png") if figures_folder.is_dir() else []:
        if stale.name not in kept:
            stale.unlink()
            print(f"removed {_shown(stale)}")
    text = "\n".join(lines)
    changed = text != path.read_text(encoding="utf-8")
    if changed:
        path.write_text(text, encoding="utf-8")
        print(f"wrote {_shown(path)}")
    return changed


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path)


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a block is stale or a figure missing")
    parser.add_argument("--only", nargs="*", help="page stems (default: every episode and self-study page)")
    parser.add_argument("--no-reuse", action="store_true", help="run every notebook, even if a test run kept it")
    args = parser.parse_args(argv)
    pages = [p for p in lesson_pages() if not args.only or p.stem in args.only]
    if args.check:
        problems = check(pages)
        for problem in problems:
            print(problem)
        return 1 if problems else 0
    model = which_model()
    problem = model_problem(model)
    if problem:
        print(problem)
        return 1
    for path in pages:
        write_page(path, model, reuse=not args.no_reuse)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
