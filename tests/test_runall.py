"""tools/runall.py runs a notebook as JupyterLab's Run All does: a real kernel aborts the cells
queued after an error, the run goes on from there so that every cell runs once, and a notebook
that cannot run at all says why in every test that reads it (tests/notebook_runs.py)."""

from __future__ import annotations

import nbformat
import pytest

from notebook_runs import NotebookRuns
from runall import run_all, run_all_report


def notebook(tmp_path, *sources: str):
    path = tmp_path / "demo.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A demo")] + [
        nbformat.v4.new_code_cell(source) for source in sources]), path)
    return path


def test_the_kernel_aborts_the_cells_after_an_error_and_the_run_goes_on(tmp_path):
    path = notebook(tmp_path, "a = 6", "", "print(a * 7)", "1 / 0", "b = a + 1", "print(b)")
    run = run_all(path)
    assert run.run_all == {1: "ok", 3: "ok", 4: "error", 5: "aborted", 6: "aborted"}   # the empty cell is not sent
    assert run.aborted == [5, 6] and run.stopped_at == 4 and run.resumed == 1
    assert run.final == {1: "ok", 3: "ok", 4: "error", 5: "ok", 6: "ok"}
    assert run.failed() == [4] and run.errors(4) == ["ZeroDivisionError: division by zero"]
    assert run.notebook.cells[3].outputs[0]["text"] == "42\n" and run.notebook.cells[6].outputs[0]["text"] == "7\n"
    report = run_all_report(run)
    assert "demo.ipynb" in report and "cell 4 failed (ZeroDivisionError" in report
    assert "cell 5: 'b = a + 1'" in report and "cell 6: 'print(b)'" in report
    assert not path.with_suffix(".ipynb").read_text().count('"outputs": [\n     {')     # the file is not written


def test_an_error_tagged_raises_exception_is_expected_but_still_stops_run_all(tmp_path):
    path = notebook(tmp_path, "x = 1", "raise ValueError('meant to')", "y = x + 1")
    source = nbformat.read(path, as_version=4)
    source.cells[2].metadata["tags"] = ["raises-exception"]
    nbformat.write(source, path)
    run = run_all(path)
    assert run.aborted == [3] and run.failed() == [] and run.final[3] == "ok"


def test_a_notebook_whose_kernel_dies_fails_every_test_that_reads_it_without_running_again(tmp_path):
    path = notebook(tmp_path, "import os\nos._exit(1)", "print('never')")
    runs = NotebookRuns(tmp_path)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="demo.ipynb could not be run with .*DeadKernelError"):
            runs(path)
    assert len(list(tmp_path.glob("*.pickle"))) == 1
