"""What the Workbench pages show of the code: the output blocks and figures that tools/outputs.py
(`python lesson.py outputs`) writes under marked cells, from the executed notebooks.

They must not drift: a block whose cell changed since, a missing or oversized figure, pages made
with different models all fail here; and a block's printout and figures must be what the
notebook prints and draws now (checked against the test run's own execution of the notebook).
"""

from __future__ import annotations

import base64
import io
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import numpy as np
import pytest
from PIL import Image

from notebook_runs import default_model, notebook_params

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import notebooks as notebook_tool  # noqa: E402
import outputs  # noqa: E402

PAGES = outputs.lesson_pages()
MARKED = [path for path in PAGES if outputs.read_page(path).marked]


def png(width: int = 40, height: int = 30, noise: bool = False) -> bytes:
    pixels = (np.random.default_rng(0).integers(0, 256, (height, width, 3)) if noise
              else np.full((height, width, 3), 200)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


# ------------------------------------------------------------------------ the lesson as it is

def test_every_marked_cell_has_its_block_written_from_its_code_as_it_is_now():
    problems = outputs.check(PAGES)
    assert not problems, "\n".join(problems)


def test_the_demonstration_episode_is_marked():
    """Episode 1 carries the whole chain: printouts and figures, one of them inside a solution."""
    page = outputs.read_page(ROOT / "episodes" / "01-images-as-tensors.md")
    kinds = [(entry.spec.text, entry.spec.figure) for entry in page.marked]
    assert (True, False) in kinds and (False, True) in kinds


def test_notebooks_and_handouts_leave_the_markers_and_blocks_out():
    for path in MARKED:
        page = outputs.read_page(path)
        for target in (notebook_tool.LEARNER, notebook_tool.HANDOUT, notebook_tool.SITE):
            text = "\n".join(cell.source for cell in notebook_tool.render(path, target).cells)
            assert "<!-- output" not in text and "begin output" not in text and "```output" not in text, target
            assert f"{path.stem}-output-" not in text, target
        assert not list((ROOT / "notebooks" / "fig").glob(f"{path.stem}-output-*")), "figures travel only if shown"
        assert page.marked


@pytest.mark.parametrize("path", notebook_params([notebook_tool.notebook_path(p) for p in MARKED]))
def test_the_blocks_are_what_the_notebook_prints_and_draws_now(path, notebook_run):
    """Against this test run's own execution of the notebook, with the model the blocks were made with."""
    page_path = next(p for p in MARKED if notebook_tool.notebook_path(p) == path)
    page = outputs.read_page(page_path)
    models = {entry.block_model for entry in page.marked}
    if models != {default_model()}:
        pytest.skip(f"the blocks were made with {models}, this test run uses {default_model()}")
    run = notebook_run(path)
    cells = outputs.notebook_cells(run, page)
    state = run.notebook.metadata.get("widgets", {}).get(outputs.WIDGET_STATE, {}).get("state", {})
    for entry in page.marked:
        block = page.lines[entry.block[0]:entry.block[1] + 1]
        cell = cells[entry.cell]
        if entry.spec.text:
            start = block.index("```output")
            written = block[start + 1:block.index("```", start + 1)]
            now = outputs.printout(cell.outputs, entry.spec)
            assert outputs.same_printout(written, now, entry.spec.varies), \
                f"cell {entry.cell + 1}'s printout changed: {written} -> {now}"
        figures = [m["src"] for line in block for m in [outputs.FIGURE.match(line)] if m]
        drawn = outputs.drawn_figures(cell.outputs, state) if entry.spec.figure else []
        assert len(figures) == len(drawn)
        for src, picture in zip(figures, drawn):
            now = np.asarray(Image.open(io.BytesIO(outputs.small_png(picture))).convert("RGB"), dtype=float)
            kept = np.asarray(Image.open(page_path.parent / src).convert("RGB"), dtype=float)
            assert now.shape == kept.shape, src
            assert np.abs(now - kept).mean() < 3, f"{src} is not what the cell draws now"


# ------------------------------------------------------------------------ the marker and the check

def test_a_marker_says_what_it_wants_and_a_bad_one_is_named():
    assert outputs.parse_spec('figure "A dog"') == outputs.Spec(False, True, "A dog")
    assert outputs.parse_spec('text figure alt="A dog" caption="Two" lines=4') == \
        outputs.Spec(True, True, "A dog", "Two", (1, 4))
    assert outputs.parse_spec("text varies") == outputs.Spec(True, False, varies=True)
    assert outputs.same_printout(["acc 0.97", "near 96%"], ["acc 0.98", "near 100%"], varies=True)
    assert not outputs.same_printout(["acc 0.97"], ["acc 0.98"])                  # exact unless it varies
    assert not outputs.same_printout(["acc 0.97"], ["acc 0.50"], varies=True)     # a real change is caught
    assert not outputs.same_printout(["near 90%"], ["near 100%"], varies=True)
    assert not outputs.same_printout(["stamp on dogs: 1.0"], ["stamp on cats: 1.0"], varies=True)
    assert not outputs.same_printout(["acc 0.53"], ["acc 0.5299999713897705"], varies=True)   # a float in full
    assert not outputs.same_printout(["n 1"], ["n 1.0"], varies=True)
    assert not outputs.same_printout(["loss 1.02e+03"], ["loss 1.20e+03"], varies=True)
    for old, new in (("0.15", "0.20"), ("0.5", "0.55"), ("1e-05", "1.02e-05"), ("93 %", "95 %"), (".97", ".98"),
                     ("999.98", "1,000.01")):
        assert outputs.same_printout([f"x {old}"], [f"x {new}"], varies=True), (old, new)
    for spec, message in (("", "say what to show"), ("figure", "needs its alt text"),
                          ("text lines=x", "lines=x"), ("texts", "'texts'"),
                          ('figure alt="a [b]"', "may not hold")):
        with pytest.raises(ValueError, match=message):
            outputs.parse_spec(spec)


def page_with_block(folder: Path, code: str = "print(1)", figure: bytes = b"") -> Path:
    """An episode with one marked cell and a block written for ``code`` (and a figure, if given)."""
    (folder / "fig").mkdir(parents=True, exist_ok=True)
    entry = outputs.Marked(0, code, outputs.parse_spec('text figure alt="A square"'), 0)
    if figure:
        (folder / "fig" / "01-x-output-a.png").write_bytes(figure)
    block = outputs.block_lines(entry, "efficientnet_lite0", ["1"], ["01-x-output-a.png"] if figure else [])
    path = folder / "01-x.md"
    path.write_text("---\ntitle: X\n---\n\n```python\n" + code + "\n```\n\n<!-- output: text figure alt=\"A square\" -->\n\n"
                    + "\n".join(block) + "\n\nText.\n", encoding="utf-8")
    return path


def test_a_changed_cell_a_missing_or_large_figure_and_mixed_models_are_caught(tmp_path):
    path = page_with_block(tmp_path, figure=png())
    assert outputs.check([path]) == []
    path.write_text(path.read_text().replace("print(1)", "print(2)"), encoding="utf-8")
    assert any("the cell changed since its output was written" in p for p in outputs.check([path]))
    path = page_with_block(tmp_path, figure=png())
    (tmp_path / "fig" / "01-x-output-a.png").unlink()
    assert any("01-x-output-a.png is missing" in p for p in outputs.check([path]))
    path = page_with_block(tmp_path, figure=png(400, 400, noise=True))
    assert any("over 150 KB" in p for p in outputs.check([path]))
    path = page_with_block(tmp_path, figure=png())
    other = tmp_path / "other"
    other.mkdir()
    second = page_with_block(other, figure=png())
    second.write_text(second.read_text().replace("efficientnet_lite0:", "resnet50:"), encoding="utf-8")
    assert any("different models" in p for p in outputs.check([path, second]))
    path.write_text(path.read_text().replace("<!-- output: text figure", "<!-- output: figure"), encoding="utf-8")
    assert outputs.check([path]) == []                      # a printout it no longer asks for is harmless
    path.write_text("Text.\n\n<!-- output: text -->\n", encoding="utf-8")
    assert any("does not follow a ```python cell" in p for p in outputs.check([path]))


def test_a_printout_is_what_a_reader_sees():
    outputs_of_a_cell = [
        {"output_type": "stream", "name": "stdout", "text": "NOTICE: using the offline stand-in ...\n\x1b[31mred\x1b[0m\n"},
        {"output_type": "stream", "name": "stderr", "text": "10%\r50%\r100%\n"},
        {"output_type": "execute_result", "data": {"text/plain": "42"}},
        {"output_type": "display_data", "data": {"image/png": "...", "text/plain": "<Figure>"}},
    ]
    assert outputs.printout(outputs_of_a_cell, outputs.Spec(True, False)) == ["red", "100%", "42"]
    assert outputs.printout(outputs_of_a_cell, outputs.Spec(True, False, lines=(2, 2))) == ["...", "100%", "..."]


def test_figures_are_made_small_enough():
    big = png(900, 700, noise=True)
    assert len(big) > outputs.MAX_FIGURE_BYTES
    small = outputs.small_png(big)
    assert len(small) <= outputs.MAX_FIGURE_BYTES and small.startswith(b"\x89PNG")


def fake_run(code_cells, pictures=()):
    """What runall.run_all returns, for write_page: a notebook of executed code cells."""
    cells = []
    for source, printed in code_cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
        cells.append(cell)
    for picture in pictures:
        cells[-1].outputs.append(nbformat.v4.new_output(
            "display_data", data={"image/png": base64.b64encode(picture).decode(), "text/plain": "<Figure>"}))
    return SimpleNamespace(notebook=nbformat.v4.new_notebook(cells=cells), aborted=[], failed=lambda: [],
                           printed=lambda: "")


def test_write_page_writes_replaces_and_cleans_up(tmp_path, monkeypatch):
    (tmp_path / "fig").mkdir()
    (tmp_path / "fig" / "01-y-output-00000000.png").write_bytes(png())          # a block's figure, no longer shown
    path = tmp_path / "01-y.md"
    path.write_text("---\ntitle: Y\n---\n\n```python\nprint('a')\n```\n\n<!-- output: text -->\n\nText.\n\n"
                    "```python\n# This cell is meant to fail.\nplot()\n```\n\n<!-- output: figure alt=\"A grey square\" -->\n\nEnd.\n",
                    encoding="utf-8")
    run = fake_run([("print('a')", "a\n"), ("%%expect_error\n# This cell is meant to fail.\nplot()", "")], [png()])
    monkeypatch.setattr(outputs, "executed", lambda *args, **kwargs: run)
    assert outputs.write_page(path, "efficientnet_lite0")
    text = path.read_text()
    assert "```output\na\n```" in text and text.count("<!-- begin output") == 2 and text.endswith("End.\n")
    assert "Text.\n\n```python" in text and "\n\n\n" not in text
    figure = f"01-y-output-{outputs.cell_hash('# This cell is meant to fail.' + chr(10) + 'plot()')}.png"
    assert (tmp_path / "fig" / figure).is_file() and not (tmp_path / "fig" / "01-y-output-00000000.png").exists()
    assert f'![What the cell above draws. Notebook run with the offline stand-in, EfficientNet-Lite0.](fig/{figure})' \
           '{alt="A grey square"}' in text
    assert outputs.check([path]) == []
    assert not outputs.write_page(path, "efficientnet_lite0")            # written again: nothing changes
    run.notebook.cells[0].outputs[0]["text"] = "b\n"
    assert outputs.write_page(path, "efficientnet_lite0")                # a new printout replaces the old
    assert "```output\nb\n```" in path.read_text() and path.read_text().count("<!-- begin output") == 2


def test_a_model_whose_outputs_cannot_be_made_is_refused(monkeypatch, tmp_path):
    assert "not a model of the lesson" in outputs.model_problem("vgg16")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))                  # no ResNet-50 weights here
    problem = outputs.model_problem("resnet50")
    assert "ResNet-50's weights cannot be used (no file at" in problem and "python -m helpers.setup" in problem
    assert outputs.model_problem("efficientnet_lite0") is None


def test_a_notebook_out_of_sync_is_named_and_make_notebooks_fixes_it(tmp_path, monkeypatch):
    """The advice is run: `python lesson.py notebooks` (tools/notebooks.py) brings the notebook in sync."""
    import runall

    episodes, notebooks = tmp_path / "episodes", tmp_path / "notebooks"
    episodes.mkdir()
    path = episodes / "01-z.md"
    path.write_text("---\ntitle: Z\nteaching: 1\nexercises: 1\n---\n\n```python\nprint(1)\n```\n\n"
                    "<!-- output: text -->\n", encoding="utf-8")
    monkeypatch.setattr(notebook_tool, "EPISODES", episodes)
    monkeypatch.setattr(notebook_tool, "NOTEBOOKS", notebooks)
    monkeypatch.setattr(outputs, "ROOT", tmp_path)
    monkeypatch.setattr(runall, "run_all", lambda notebook, model: fake_run([("print(1)", "1\n")]))
    monkeypatch.setattr(runall, "saved_run", lambda *args: None)
    with pytest.raises(SystemExit, match=r"notebooks/01-z.ipynb is out of sync with 01-z.md: run "
                                         r"`python lesson.py notebooks` first"):
        outputs.executed(path, "efficientnet_lite0")
    assert notebook_tool.main([]) == 0
    fake_run_attributes = outputs.executed(path, "efficientnet_lite0")
    assert fake_run_attributes.notebook.cells[0].outputs[0]["text"] == "1\n"


def test_a_printed_line_wider_than_the_page_wraps_and_the_width_is_checked():
    long = "Target class: 282 · tiger cat (p = 0.0132); the model's top class is 243 · bull mastiff (p = 0.384)"
    lines = outputs.printout([{"output_type": "stream", "text": long + "\nshort\n"}], outputs.parse_spec("text"))
    assert all(len(line.encode()) <= outputs.WIDTH for line in lines) and lines[-1] == "short"
    assert " ".join(lines[:-1]) == long                      # nothing lost, words kept whole
    for path in MARKED:                                      # every block on the pages fits
        page = outputs.read_page(path)
        for entry in page.marked:
            block = page.lines[entry.block[0]:entry.block[1] + 1]
            if "```output" in block:
                start = block.index("```output")
                wide = [line for line in block[start + 1:block.index("```", start + 1)] if len(line.encode()) > outputs.WIDTH]
                assert not wide, f"{path.name}: {wide}"
