"""Participants run the lesson with ResNet-50, not the stand-in: every notebook must run with it.

ResNet-50 with random weights ("resnet50_untrained") has the real architecture, layer names and
speed, and needs no download; its predictions mean nothing, so only errors are checked here.
nbval runs the notebooks with the stand-in.
"""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_runs_with_resnet50(path, monkeypatch):
    monkeypatch.setenv("LESSON_MODEL", "resnet50_untrained")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()   # raises on any error
    printed = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for output in cell.get("outputs", []))
    assert "NOTICE: using the offline stand-in" not in printed              # it really ran ResNet-50
    failed = [cell.source[:80] for cell in notebook.cells if cell.cell_type == "code"
              and any(output.get("output_type") == "error" for output in cell.get("outputs", []))]
    assert not failed, "an intended error runs under %%expect_error and shows no error output"
