"""The generated notebooks as a learner sees them in JupyterLab (headless Chromium, Debian's package).

Every notebook and handout is opened in a JupyterLab that serves a copy of notebooks/, as
`make lab` does: each figure must load (no ``<img>`` with ``naturalWidth == 0``). Rendering the
Markdown is enough for figures, so only one notebook is run: after Run All, its solutions and
their outputs are still closed, and no instructor note shows.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "notebooks" / "handouts").glob("*.ipynb")) \
    + sorted((ROOT / "notebooks" / "self-study").glob("*.ipynb"))
IMAGES = re.compile(r"!\[[^\]]*\]\(|<img\b")
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"


@pytest.fixture(scope="module")
def lab(jupyterlab_server, tmp_path_factory):
    """JupyterLab on a copy of notebooks/ (so that nothing in the repository is touched)."""
    folder = tmp_path_factory.mktemp("lab") / "notebooks"
    shutil.copytree(ROOT / "notebooks", folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return jupyterlab_server(folder)


def _open(page, base: str, token: str, relative: str) -> None:
    """Open one notebook alone (``reset`` forgets the tabs of the previous one) and wait until
    every Markdown cell is rendered."""
    cells = json.loads((ROOT / "notebooks" / relative).read_text(encoding="utf-8"))["cells"]
    markdown = sum(c["cell_type"] == "markdown" for c in cells)
    page.goto(f"{base}/lab/tree/{relative}?reset&token={token}", wait_until="domcontentloaded")
    page.wait_for_function(
        "([panel, n]) => document.querySelectorAll(panel + ' .jp-MarkdownCell .jp-RenderedMarkdown').length === n",
        arg=[PANEL, markdown], timeout=60_000)


def _stop_kernels(base: str, token: str) -> None:
    """Opening a notebook starts a kernel: stop them, two cores are not many.

    Listing the kernels while one is still starting answers 500 (jupyter_server reads the new
    kernel's last activity before it has one): on a busy machine, ask again a little later."""
    for attempt in range(30):
        try:
            with urllib.request.urlopen(f"{base}/api/kernels?token={token}", timeout=10) as answer:
                kernels = json.load(answer)
            break
        except urllib.error.HTTPError as error:
            if error.code != 500 or attempt == 29:
                raise
            time.sleep(1)
    for kernel in kernels:
        request = urllib.request.Request(f"{base}/api/kernels/{kernel['id']}?token={token}", method="DELETE")
        urllib.request.urlopen(request, timeout=10).close()


def test_every_figure_of_every_notebook_shows_in_jupyterlab(lab, browser, screenshots):
    base, token = lab
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    shown = 0
    for notebook in NOTEBOOKS:
        relative = notebook.relative_to(ROOT / "notebooks").as_posix()
        expected = len(IMAGES.findall("".join("".join(c["source"]) for c in json.loads(
            notebook.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "markdown")))
        _open(page, base, token, relative)
        # images inside a closed <details> load too; open them anyway, as a learner would
        page.evaluate("(panel) => document.querySelectorAll(panel + ' details').forEach(d => d.open = true)", PANEL)
        page.wait_for_function(
            "(panel) => [...document.querySelectorAll(panel + ' .jp-RenderedMarkdown img')].every(i => i.complete)",
            arg=PANEL, timeout=30_000)
        images = page.evaluate("(panel) => [...document.querySelectorAll(panel + ' .jp-RenderedMarkdown img')]"
                               ".map(i => [i.getAttribute('src'), i.naturalWidth])", PANEL)
        assert len(images) == expected, f"{relative}: {len(images)} images rendered, {expected} in its Markdown"
        broken = [src for src, width in images if width == 0]
        if broken:
            page.screenshot(path=str(screenshots / f"broken-{notebook.stem}.png"))
        assert not broken, f"{relative}: broken images {broken}"
        if images and relative == "03-gradcam-by-hand.ipynb":
            page.locator(f"{PANEL} .jp-RenderedMarkdown img").first.scroll_into_view_if_needed()
            page.screenshot(path=str(screenshots / "notebook-figure.png"))
        shown += len(images)
        _stop_kernels(base, token)
    assert shown, "no notebook shows a figure: the test would pass without checking any"


def cells_under(cells, headings, at):
    """The cells a collapsed heading at ``at`` hides: up to the next heading of its level or higher."""
    level = len(cells[at]["source"][0]) - len(cells[at]["source"][0].lstrip("#")) if isinstance(
        cells[at]["source"], list) else len(cells[at]["source"]) - len(cells[at]["source"].lstrip("#"))
    hidden = []
    for cell in cells[at + 1:]:
        text = "".join(cell["source"])
        levels = [len(line) - len(line.lstrip("#")) for line in text.splitlines()
                  if cell["cell_type"] == "markdown" and re.match(r"^#{1,6}\s", line)]
        if levels and min(levels) <= level:
            break
        hidden.append(cell)
    return hidden


def test_after_run_all_solutions_stay_closed_and_one_click_opens_code_and_output(lab, browser, screenshots):
    """Episode 1 (the quickest) run from top to bottom, as a learner would: every solution stays
    folded under its "Solution" heading; one click on the heading's arrow shows its prose, its code
    and its output together."""
    base, token = lab
    name = "01-images-as-tensors.ipynb"
    cells = json.loads((ROOT / "notebooks" / name).read_text(encoding="utf-8"))["cells"]
    solutions = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and "solution" in c["metadata"].get("tags", [])]
    headings = [i for i, c in enumerate(cells) if c["metadata"].get("jp-MarkdownHeadingCollapsed")]
    assert solutions and headings
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    _open(page, base, token, name)
    page.wait_for_function("() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]"
                           ".some(e => e.innerText.includes('| Idle'))", timeout=90_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()
    # done when every solution has its output and no cell waits to run
    page.wait_for_function(
        "([panel, ids]) => { const cells = document.querySelectorAll(panel + ' .jp-Cell');"
        " return ids.every(i => cells[i].querySelector('.jp-OutputArea-child'))"
        " && ![...document.querySelectorAll(panel + ' .jp-InputPrompt')].some(p => p.innerText.includes('*'))"
        " && [...document.querySelectorAll('.jp-StatusBar-TextItem')].some(e => e.innerText.includes('| Idle')); }",
        arg=[PANEL, solutions], timeout=180_000)
    dom_cells = page.locator(f"{PANEL} .jp-Cell")
    assert dom_cells.count() == len(cells)
    for index in solutions:
        assert not dom_cells.nth(index).is_visible(), f"cell {index}: a solution shows after Run All"
        assert "Error" not in dom_cells.nth(index).inner_text()
    for index in headings:
        heading = dom_cells.nth(index)
        assert heading.is_visible() and heading.locator(".jp-collapseHeadingButton.jp-mod-collapsed").count() == 1
    assert page.locator(PANEL, has_text="Instructor note").count() == 0
    assert page.locator(f"{PANEL} .jp-Cell", has_text="%%solution").count() == 0
    first = dom_cells.nth(solutions[0])
    heading_at = max(i for i in headings if i < solutions[0])
    heading = dom_cells.nth(heading_at)
    heading.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / "notebook-solution-closed.png"))
    opener = heading.locator("button", has_text="cells hidden")
    assert opener.is_visible() and opener.inner_text().strip() == f"{len(cells_under(cells, headings, heading_at))} cells hidden"
    opener.click()                                                    # the one click
    first.wait_for(state="visible", timeout=30_000)
    assert first.locator(".jp-Cell-inputArea .cm-content").is_visible()
    printed = first.locator(".jp-OutputArea-output pre").first
    assert printed.is_visible() and printed.inner_text().strip(), "the solution's output shows with its code"
    under = range(heading_at + 1, heading_at + 1 + len(cells_under(cells, headings, heading_at)))
    assert all(dom_cells.nth(index).is_visible() for index in under)             # its text too
    assert any(cells[index]["cell_type"] == "markdown" for index in under)
    first.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / "notebook-solution-open.png"))
    for index in solutions[1:]:
        assert not dom_cells.nth(index).is_visible(), "one click opens one solution"
    _stop_kernels(base, token)
