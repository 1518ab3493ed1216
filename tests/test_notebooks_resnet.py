"""Participants run the lesson with ResNet-50, not the stand-in: every notebook must run with it.

ResNet-50 with random weights ("resnet50_untrained") has the real architecture, layer names and
speed, and needs no download; its predictions mean nothing, so only errors are checked here.
Each notebook runs once with it (tests/notebook_runs.py); tests/test_notebooks.py runs them with
the stand-in.
"""

import pytest

from notebook_runs import NOTEBOOKS, notebook_params
from runall import describe

MODEL = "resnet50_untrained"


@pytest.mark.parametrize("path", notebook_params(NOTEBOOKS, MODEL))
def test_notebook_runs_with_resnet50(path, notebook_run):
    run = notebook_run(path, MODEL)
    assert "NOTICE: using the offline stand-in" not in run.printed()          # it really ran ResNet-50
    failed = run.failed()
    assert not failed, f"{path.name} fails with {MODEL} (an intended error runs under %%expect_error):\n" + "\n".join(
        f"{describe(run, [index])}: {'; '.join(run.errors(index)) or run.final[index]}" for index in failed)
