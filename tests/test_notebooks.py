"""Every notebook and handout, run as a learner runs it: JupyterLab's Run All (tools/runall.py).

- Run All runs everything: in no notebook or handout is a cell aborted by an error above it (an
  intended error runs under ``%%expect_error`` and does not stop the notebook, issue 16);
- each code cell runs without an error unless it is tagged ``raises-exception`` (what
  ``nbval --nbval-lax`` checked, one test per cell: a failure names the notebook and the cell).

The self-study notebooks (learners/ pages outside the schedule) run the same way. Each notebook runs
once, with the stand-in model, and these tests share that run
(tests/notebook_runs.py). `make test` runs every notebook once more with nbval, with ResNet-50's
architecture (random weights), the model participants use (tests/conftest.py, ``NBVAL_MODEL``).
"""

from __future__ import annotations

import re

import pytest

from notebook_runs import HANDOUTS, NOTEBOOKS, SELF_STUDY, cell_params, notebook_params, relative
from runall import describe, run_all_report

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_there_are_notebooks_and_handouts():
    assert NOTEBOOKS and HANDOUTS and len(NOTEBOOKS) == len(HANDOUTS)


@pytest.mark.parametrize("path", notebook_params(NOTEBOOKS + HANDOUTS + SELF_STUDY))
def test_run_all_runs_every_cell(path, notebook_run):
    run = notebook_run(path)
    assert run.run_all, f"{relative(path)} has no code cell to run"
    if run.aborted:
        pytest.fail(run_all_report(run), pytrace=False)


@pytest.mark.parametrize("path, index", cell_params(NOTEBOOKS + HANDOUTS + SELF_STUDY))
def test_cell_runs_without_an_unexpected_error(path, index, notebook_run):
    run = notebook_run(path)
    assert index in run.final, f"{relative(path)} cell {index} never ran"
    if run.failed(index):
        tracebacks = "\n".join(ANSI.sub("", "\n".join(output.get("traceback", [])))
                               for output in run.notebook.cells[index].outputs if output.get("output_type") == "error")
        pytest.fail(f"{relative(path)} cell {index} fails ({'; '.join(run.errors(index)) or run.final[index]}):\n"
                    f"{describe(run, [index])}\n{tracebacks}", pytrace=False)
