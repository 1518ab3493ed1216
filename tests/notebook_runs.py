"""Every notebook executed once per model per test run, shared by every test that reads it.

A test asks for the ``notebook_run`` fixture (tests/conftest.py) and calls it:
``run = notebook_run(path)`` (the stand-in model) or ``notebook_run(path, "resnet50_untrained")``.
The notebook runs as JupyterLab's Run All runs it (tools/runall.py) and then to its end; the
first test that asks executes it, the others read the same executed notebook (outputs, figures,
widget state, each cell's reply). Under pytest-xdist, the runs are kept on disk for the whole
test run behind a lock, so that no two workers execute the same notebook; parametrize with
``notebook_params`` or ``cell_params`` to keep a notebook's tests on one worker.

    @pytest.mark.parametrize("path", notebook_params(NOTEBOOKS))
    def test_something(path, notebook_run):
        run = notebook_run(path)
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
from runall import SAVED_RUNS, Run, run_all, saved_run_name  # noqa: E402  (tools/, on sys.path through tests/conftest.py)

#: The learners' notebooks (one per scheduled episode) and the live-coding handouts, whatever they are called today.
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
HANDOUTS = sorted((ROOT / "notebooks" / "handouts").glob("*.ipynb"))
#: The self-study notebooks, from learners/ pages outside the schedule (run with the stand-in only).
SELF_STUDY = sorted((ROOT / "notebooks" / "self-study").glob("*.ipynb"))
STAND_IN = "efficientnet_lite0"


def default_model() -> str:
    """The model the tests use unless a test names one: LESSON_MODEL, else the offline stand-in."""
    return os.environ.get("LESSON_MODEL") or STAND_IN


def relative(path: Path) -> str:
    """``notebooks/handouts/02-pretrained-model.ipynb`` (a path outside the lesson: as it is)."""
    path = Path(path).resolve()
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.as_posix()


def group(path: Path, model: Optional[str] = None) -> pytest.MarkDecorator:
    """The pytest-xdist group of every test that reads ``path`` run with ``model``: one worker runs them all."""
    return pytest.mark.xdist_group(f"{relative(path)}:{model or default_model()}")


def notebook_params(paths: Iterable[Path], model: Optional[str] = None) -> List:
    """One parameter per notebook, named by its path, grouped with the notebook's other tests."""
    return [pytest.param(path, id=relative(path), marks=group(path, model)) for path in paths]


def code_cells(path: Path) -> List[Tuple[int, str]]:
    """(index, source) of each code cell that JupyterLab would run (empty ones it skips)."""
    cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    return [(index, "".join(cell["source"])) for index, cell in enumerate(cells)
            if cell["cell_type"] == "code" and "".join(cell["source"]).strip()]


def cell_params(paths: Iterable[Path], model: Optional[str] = None) -> List:
    """One parameter (path, cell index) per code cell, named ``notebooks/03-gradcam.ipynb::cell 12``."""
    return [pytest.param(path, index, id=f"{relative(path)}::cell {index}", marks=group(path, model))
            for path in paths for index, _ in code_cells(path)]


class NotebookRuns:
    """The runs of this test process, and (under xdist) the runs of the whole test run on disk."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.runs: Dict[Tuple[str, str], Tuple[Optional[Run], str]] = {}

    def __call__(self, path: Path, model: Optional[str] = None) -> Run:
        model = model or default_model()
        key = (relative(path), model)
        if key not in self.runs:
            self.runs[key] = self._shared(Path(path), model)
        run, failure = self.runs[key]
        if run is None:         # said once per test that reads it, not executed again for each
            raise RuntimeError(f"{key[0]} could not be run with {model}: {failure}")
        return run

    def _shared(self, path: Path, model: str) -> Tuple[Optional[Run], str]:
        """(the run, "") or (None, why it failed): from disk when another worker made it."""
        from filelock import FileLock      # torch's own dependency

        name = saved_run_name(path, model, ROOT)        # tools/outputs.py and tools/site.py reuse it
        saved = self.folder / f"{name}.pickle"
        with FileLock(str(self.folder / f"{name}.lock")):
            if saved.is_file():
                with saved.open("rb") as file:
                    return pickle.load(file)
            try:
                result: Tuple[Optional[Run], str] = (run_all(path, model), "")
            except Exception as error:      # a dead kernel, a timeout: every test of the notebook says so
                result = (None, f"{type(error).__name__}: {error}")
            with saved.open("wb") as file:
                pickle.dump(result, file)
            return result


def shared_folder(tmp_path_factory) -> Path:
    """A folder that every pytest-xdist worker of this test run sees (the run's own base temp)."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / SAVED_RUNS
    folder.mkdir(exist_ok=True)
    return folder


def make_notebook_runs(tmp_path_factory) -> Callable[..., Run]:
    return NotebookRuns(shared_folder(tmp_path_factory))
