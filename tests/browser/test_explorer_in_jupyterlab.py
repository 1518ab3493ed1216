"""Episode 5's explorer in a real JupyterLab, driven by headless Chromium (Debian's package).

Starts JupyterLab on 127.0.0.1 with a free port and a token, opens the notebook, runs all
cells and checks the widgets render. Then the episode's FIRST explorer (a solution cell makes
a second one on the same model) must still answer: a class picked from its list and a name
typed in its search box with Enter each change its heatmap, and no output says "replaced".
Its status gives probabilities as percentages, its Layer list says which layers are deep
(coarse) and which earlier (finer), and its colour bar follows the colours chosen.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory, jupyterlab_server):
    """JupyterLab (conftest's ``jupyterlab_server``) on a folder holding a copy of episode 5."""
    workdir = tmp_path_factory.mktemp("notebooks")
    shutil.copyfile(ROOT / "notebooks" / "05-exploring.ipynb", workdir / "05-exploring.ipynb")
    return jupyterlab_server(workdir)


def test_the_explorer_renders_and_answers_in_jupyterlab(jupyterlab, browser, screenshots):
    base, token = jupyterlab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{base}/lab/tree/05-exploring.ipynb?token={token}", wait_until="domcontentloaded")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    # the kernel must be up before "Run All Cells", or the click runs nothing
    page.wait_for_function("() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]"
                           ".some(e => e.innerText.includes('| Idle'))", timeout=90_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()

    try:
        page.locator(".jp-OutputArea-output .widget-image").first.wait_for(state="visible", timeout=120_000)
    except Exception:
        page.screenshot(path=str(screenshots / "explorer-timeout.png"), full_page=True)
        raise
    # all cells done: the kernel is idle and no cell is queued or running ("[*]")
    page.wait_for_function("() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]"
                           ".some(e => e.innerText.includes('| Idle'))"
                           " && ![...document.querySelectorAll('.jp-InputPrompt')].some(e => e.innerText.includes('*'))",
                           timeout=180_000)
    # only outputs count: the lesson's own callout quotes that message
    errors = page.locator(".jp-OutputArea-output", has_text="Error displaying widget")
    if errors.count():
        page.screenshot(path=str(screenshots / "widget-error.png"), full_page=True)
        raise AssertionError(f"widgets failed to render: {errors.all_inner_texts()}")
    # the episode's own explorer is the FIRST one; a solution cell's explorer comes after it (issue 10 §2)
    first = page.locator(".jp-OutputArea-output", has=page.locator(".widget-image")).first
    heatmap = first.locator(".widget-image")
    image_select = first.locator(".widget-dropdown", has_text="Image").locator("select").first
    assert image_select.evaluate("s => s.options[s.selectedIndex].text") == "both.png"
    upload = first.locator(".widget-upload").first
    assert upload.inner_text().strip().startswith("Upload")          # not a truncated "Your own phot…"
    assert upload.evaluate("b => b.scrollWidth <= b.clientWidth + 1"), "the upload button's label is cut off"
    class_select = first.locator(".widget-dropdown", has_text="Class").locator("select").first
    class_select.wait_for(timeout=30_000)
    shown = class_select.locator("option").all_inner_texts()      # ipywidgets uses no-break spaces
    labels = [label.replace("\xa0", " ") for label in shown]
    assert "245 · French bulldog" in labels and "281 · tabby" in labels
    current = labels[int(class_select.evaluate("s => s.selectedIndex"))]
    chosen = "281 · tabby" if current != "281 · tabby" else "245 · French bulldog"
    heatmap_changes_after(page, heatmap, lambda: class_select.select_option(label=shown[labels.index(chosen)]))
    status = first.locator(".widget-html", has_text="top class").first
    expect_text(page, status, chosen)
    # type a name in the search box and press Enter: the first matching class is shown
    search = first.locator(".widget-text input[list]").first              # the Combobox: an input with a datalist
    heatmap_changes_after(page, heatmap, lambda: (search.fill("zebra"), search.press("Enter")))
    expect_text(page, status, "340 · zebra")
    # the probability as a novice reads it, the layers as deep (coarse) or earlier (finer), a colour bar
    shown_status = status.inner_text().replace("\xa0", " ")
    assert re.search(r"340 · zebra: probability (\d+(\.\d+)?%|under 0\.01%|over 99\.9%) ", shown_status), shown_status
    layer_select = first.locator(".widget-dropdown", has_text="Layer").locator("select").first
    layers = [label.replace("\xa0", " ") for label in layer_select.locator("option").all_inner_texts()]
    assert layers[0] == "blocks[6] (deepest: coarse)" and layers[-1] == "blocks[3] (earliest: finest)", layers
    assert all(label.endswith("(earlier: finer)") for label in layers[1:-1])
    ramp = first.locator(".lesson-colorbar-ramp")
    assert ramp.is_visible() and ramp.bounding_box()["width"] >= 0.9 * heatmap.bounding_box()["width"]
    assert ramp.evaluate("e => getComputedStyle(e).backgroundImage").startswith("linear-gradient(to right, rgb(0, 0, 4)")
    assert first.get_by_text("0: no evidence").is_visible() and first.get_by_text("1: the strongest").is_visible()
    colours = first.locator(".widget-dropdown", has_text="Colours").locator("select").first
    colours.select_option(label="viridis")
    page.wait_for_function("e => getComputedStyle(e.querySelector('.lesson-colorbar-ramp'))"   # redrawn: query again
                           ".backgroundImage.startsWith('linear-gradient(to right, rgb(68, 1, 84)')",
                           arg=first.element_handle(), timeout=30_000)          # viridis starts dark purple
    outputs = " ".join(page.locator(".jp-OutputArea-output").all_inner_texts())
    assert "replaced" not in outputs and "⚠" not in outputs
    first.scroll_into_view_if_needed()
    first.screenshot(path=str(screenshots / "explorer.png"))           # the whole first explorer
    assert errors.count() == 0


def heatmap_changes_after(page, heatmap, action) -> None:
    """Do ``action`` and wait until the heatmap ``<img>`` shows another picture."""
    before = heatmap.get_attribute("src")
    action()
    heatmap.element_handle().wait_for_element_state("visible")
    page.wait_for_function("([img, old]) => img.src !== old", arg=[heatmap.element_handle(), before],
                           timeout=30_000)


def expect_text(page, locator, text: str) -> None:
    page.wait_for_function("([e, text]) => e.innerText.replace(/\\u00a0/g, ' ').includes(text)",
                           arg=[locator.element_handle(timeout=30_000), text], timeout=30_000)
