"""What the notebook benchmarks share: which notebooks, which limits, and one run in a fresh kernel.

``cell_times.py`` (time per cell) and ``memory.py`` (peak memory) run each notebook top to bottom
in a fresh Jupyter kernel, cell by cell, as a learner's Shift+Enter would, offline, with
``LESSON_MODEL`` set. A cell's *kind* sets its time limit:

- ``setup``: tagged ``setup`` (the notebook generator tags cells that begin ``# Set-up:``), or
  beginning ``# Set-up:``;
- ``training``: tagged ``training``, or holding a line that begins ``# Training:``;
- ``cell``: any other.

>>> cell_kind({"source": "# Show, do not type: the model.\\n# Training: 8 epochs\\nmodel = train()"})
'training'
>>> LIMITS["cell"], LIMITS["training"]
(10.0, 20.0)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from runall import INLINE, PatientClient, local_kernels  # noqa: E402  (tools/ is not a package)

#: The models every benchmark runs with: the offline stand-in, and ResNet-50's architecture with
#: random weights (the model participants use, at its speed and size, without downloading it).
MODELS = ("efficientnet_lite0", "resnet50_untrained")
#: Seconds a cell of each kind may take (on a 2-core CPU, idle, warm).
LIMITS: Dict[str, float] = {"cell": 10.0, "setup": 20.0, "training": 20.0}
#: Peak memory of a kernel and its children, in GB, that no notebook may exceed.
MEMORY_LIMIT_GB = 1.5
TRAINING_MARKER = "# Training:"


def lesson_notebooks(root: Path = ROOT) -> List[Path]:
    """The episodes' notebooks and the self-study notebooks (``notebooks/self-study/``), in order."""
    return sorted((root / "notebooks").glob("*.ipynb")) + sorted((root / "notebooks" / "self-study").glob("*.ipynb"))


def cell_kind(cell) -> str:
    """``"setup"``, ``"training"`` or ``"cell"``: which time limit applies (see the module's docstring)."""
    tags = set(cell.get("metadata", {}).get("tags", []))
    lines = [line.strip() for line in cell.get("source", "").splitlines() if line.strip()]
    if "setup" in tags or (lines and lines[0].startswith("# Set-up:")):
        return "setup"
    if "training" in tags or any(line.startswith(TRAINING_MARKER) for line in lines):
        return "training"
    return "cell"


def first_line(cell) -> str:
    """The cell's first line that is not empty, shortened: how a report names a cell."""
    return next((line.strip() for line in cell.get("source", "").splitlines() if line.strip()), "")[:70]


def kernel_env(model: str, threads: Optional[int] = None) -> Dict[str, str]:
    """The kernel's environment: this one, offline, ``LESSON_MODEL=model``, figures as PNGs (as in
    JupyterLab), and with ``threads`` the number of threads PyTorch's CPU kernels may use."""
    env = dict(os.environ, LESSON_MODEL=model, LESSON_OFFLINE="1", MPLBACKEND=INLINE)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def short_name(path: Path) -> str:
    """``09-shortcut``, or ``self-study/NAME`` for a self-study notebook."""
    path = Path(path)
    return f"{path.parent.name}/{path.stem}" if path.parent.name == "self-study" else path.stem


def execute(path: Path, model: str, threads: Optional[int] = None, timeout: int = 900,
            on_start: Optional[Callable[[int, object], None]] = None,
            on_end: Optional[Callable[[int, object, float], None]] = None,
            on_kernel: Optional[Callable[[object], None]] = None) -> nbformat.NotebookNode:
    """Run the notebook at ``path`` top to bottom in a fresh kernel; return it with its outputs.

    ``on_start(index, cell)`` and ``on_end(index, cell, seconds)`` are called around each code
    cell (``seconds``: from the kernel starting the cell to its reply, as the kernel's own
    timestamps say); ``on_kernel(client)`` once the kernel is up (``client.km``: its manager).
    A cell that fails does not stop the run: its error is in its outputs (``errors``).
    """
    path = Path(path).resolve()
    notebook = nbformat.read(path, as_version=4)
    with local_kernels() as manager:
        client = PatientClient(notebook, timeout=timeout, kernel_name="python3", allow_errors=True,
                               record_timing=True, kernel_manager_class=manager,
                               resources={"metadata": {"path": str(path.parent)}})
        started: Dict[int, float] = {}

        def cell_started(cell, cell_index, **_):
            started[cell_index] = time.perf_counter()
            if on_start:
                on_start(cell_index, cell)

        def cell_ended(cell, cell_index, **_):
            seconds = cell_seconds(cell)
            if seconds is None:
                seconds = time.perf_counter() - started.get(cell_index, time.perf_counter())
            if on_end:
                on_end(cell_index, cell, seconds)

        client.on_cell_execute, client.on_cell_executed = cell_started, cell_ended
        if on_kernel:
            client.on_notebook_start = lambda **_: on_kernel(client)
        client.execute(env=kernel_env(model, threads))
    return notebook


def cell_seconds(cell) -> Optional[float]:
    """How long the kernel took for an executed cell, from nbclient's timing metadata (None if missing)."""
    from datetime import datetime

    timing = cell.get("metadata", {}).get("execution", {})
    try:
        start = datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    return (end - start).total_seconds()


def errors(notebook: nbformat.NotebookNode) -> List[str]:
    """"cell N: Name: value" for each code cell whose output holds an error."""
    found = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.get("output_type") == "error":
                found.append(f"cell {index}: {output.get('ename')}: {str(output.get('evalue')).splitlines()[:1]}")
    return found


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """A GitHub Markdown table; the columns in ``right`` are right-aligned."""
    align = ["---:" if i in right else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
