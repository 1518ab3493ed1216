#!/usr/bin/env python3
"""Run a notebook as JupyterLab's "Run All" does, and say which cells it aborts.

    python tools/runall.py notebooks/02-pretrained-model.ipynb [...]   # exit 1 if Run All stops early

JupyterLab's Run All sends every code cell at once, one ``execute_request`` each with
``stop_on_error=True``: the first cell that fails makes the kernel abort every request still
queued, so the cells below it never run (nbval's ``raises-exception`` tag means nothing to
JupyterLab). ``run_all`` does the same through a kernel client and records each cell's reply
("ok", "error" or "aborted"). Then, so that every cell runs once as nbval would run it, it sends
the aborted cells again from the first of them on, and records their second replies too.

The executed notebook (outputs, figures, widget state) is kept, so that one run serves every
test that reads it. Example:

    >>> run = run_all(Path("notebooks/01-images-as-tensors.ipynb"))     # doctest: +SKIP
    >>> run.aborted, run.failed()                                        # doctest: +SKIP
    ([], [])
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import getpass
import hashlib
import os
import pickle
import queue
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import nbformat
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import ensure_async, run_sync
from nbclient import NotebookClient

#: matplotlib's backend in a JupyterLab kernel: figures become PNG outputs, as learners see them.
INLINE = "module://matplotlib_inline.backend_inline"
EXPECTED_ERROR_TAG = "raises-exception"


@dataclass
class Run:
    """One notebook, executed as Run All executes it (and then to its end)."""

    path: Path
    notebook: nbformat.NotebookNode
    #: cell index -> the kernel's reply to Run All's request: "ok", "error" or "aborted"
    run_all: Dict[int, str]
    #: cell index -> the reply when the cell finally ran ("ok" or "error"; its outputs are in ``notebook``)
    final: Dict[int, str]
    #: how many times Run All had to be resumed after an abort
    resumed: int = 0
    #: the kernel's LESSON_MODEL
    model: str = ""

    @property
    def aborted(self) -> List[int]:
        """The code cells that Run All did not run (indexes into ``notebook.cells``)."""
        return [index for index, status in self.run_all.items() if status == "aborted"]

    @property
    def stopped_at(self) -> Optional[int]:
        """The cell whose error made Run All stop, if it stopped."""
        aborted = self.aborted
        if not aborted:
            return None
        return max((index for index, status in self.run_all.items() if status == "error" and index < aborted[0]),
                   default=None)

    def errors(self, index: int) -> List[str]:
        """The error outputs of one cell, as "Name: value" (the value's first line)."""
        return [f"{output.get('ename')}: {(str(output.get('evalue')).splitlines() or [''])[0][:120]}"
                for output in self.notebook.cells[index].outputs if output.get("output_type") == "error"]

    def failed(self, index: Optional[int] = None) -> List[int]:
        """The code cells that failed although not tagged ``raises-exception`` (all, or just ``index``)."""
        indexes = self.final if index is None else [index] if index in self.final else []
        return [i for i in indexes if EXPECTED_ERROR_TAG not in self.notebook.cells[i].metadata.get("tags", [])
                and (self.final[i] != "ok" or self.errors(i))]

    def printed(self) -> str:
        """Everything the notebook's code cells printed (stdout and stderr)."""
        return "".join(output.get("text", "") for cell in self.notebook.cells if cell.cell_type == "code"
                       for output in cell.get("outputs", []) if output.get("output_type") == "stream")


def describe(run: Run, indexes: List[int]) -> str:
    """``cell 7 (line: "gradcam(vit, ...")`` for each cell, one per line."""
    lines = []
    for index in indexes:
        first = next((line for line in run.notebook.cells[index].source.splitlines()
                      if line.strip() and not line.startswith(("#", "%%"))), "")
        lines.append(f"  cell {index}: {first[:70]!r}")
    return "\n".join(lines)


def run_all_report(run: Run) -> str:
    """Why Run All stopped, for a test's failure message: the notebook, the failing cell, the aborted cells."""
    stop = run.stopped_at
    cause = (f"cell {stop} failed ({'; '.join(run.errors(stop)) or 'error'}) and JupyterLab aborted the "
             f"{len(run.aborted)} code cell(s) after it" if stop is not None else
             f"{len(run.aborted)} code cell(s) were aborted")
    return f"Run All stops early in {run.path.name}: {cause}:\n{describe(run, run.aborted)}"


def _poll_in_steps(channel, step: float = 1.0) -> None:
    """Make ``channel.get_msg(timeout)`` wait in polls of ``step`` seconds, up to the same timeout.

    With pyzmq's asyncio sockets, one long poll can sleep through the reply it waits for (seen with
    nbclient on the explorer's notebook: the kernel had moved on to the next cell while nbclient
    still waited for the reply, until its 900 s timeout); a fresh poll finds the message."""
    get = channel.get_msg

    async def get_msg(timeout: Optional[float] = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = step if deadline is None else max(0.0, min(step, deadline - time.monotonic()))
            try:
                return await ensure_async(get(timeout=wait))
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    channel.get_msg = get_msg


class PatientClient(NotebookClient):
    """nbclient's executor, reading the kernel's replies and outputs a second at a time (see
    ``_poll_in_steps``). Use it with ``local_kernels()`` instead of ``NotebookClient``."""

    async def async_start_new_kernel_client(self):
        client = await super().async_start_new_kernel_client()
        for channel in (client.shell_channel, client.iopub_channel):
            _poll_in_steps(channel)
        return client


class _RunAllClient(PatientClient):
    """nbclient's executor, with every request of a pass sent before the first reply is read."""

    passes = 8

    async def async_execute(self, reset_kc: bool = False, **kwargs) -> nbformat.NotebookNode:
        self.reset_execution_trackers()
        self.replies: List[Dict[int, str]] = []
        async with self.async_setup_kernel(**kwargs):
            reply = await self.async_wait_for_reply(await ensure_async(self.kc.kernel_info()))
            if reply is not None and "language_info" in reply["content"]:
                self.nb.metadata["language_info"] = reply["content"]["language_info"]
            pending = [index for index, cell in enumerate(self.nb.cells)
                       if cell.cell_type == "code" and cell.source.strip()]      # JupyterLab skips empty cells
            while pending:
                if len(self.replies) == self.passes:
                    raise RuntimeError(f"cells {pending} are still aborted after {self.passes} passes")
                statuses = await self._one_pass(pending)
                self.replies.append(statuses)
                pending = [index for index in pending if statuses[index] == "aborted"]
            self.set_widgets_metadata()
        return self.nb

    execute = run_sync(async_execute)

    async def _one_pass(self, indexes: List[int]) -> Dict[int, str]:
        """Queue every cell in ``indexes``, as Run All does, then collect each cell's outputs and reply."""
        send = self.kc.execute
        queued = collections.deque()
        for index in indexes:
            queued.append(await ensure_async(send(self.nb.cells[index].source, store_history=True,
                                                  stop_on_error=True)))
        statuses: Dict[int, str] = {}

        def on_executed(cell, cell_index, execute_reply):
            statuses[cell_index] = execute_reply["content"]["status"]

        self.kc.execute = lambda *args, **kwargs: queued.popleft()     # nbclient collects what was sent
        self.on_cell_executed = on_executed
        try:
            for index in indexes:
                await self.async_execute_cell(self.nb.cells[index], index)
        finally:
            self.kc.execute = send
            self.on_cell_executed = None
        return statuses


@contextlib.contextmanager
def local_kernels() -> Iterator[type]:
    """A kernel manager class for nbclient whose kernels talk over a local socket where the system
    has them (no warning about unencrypted TCP), over TCP elsewhere (Windows). It is asynchronous,
    so that nbclient notices a kernel that died instead of waiting for its output forever.

    >>> with local_kernels() as manager:                                # doctest: +SKIP
    ...     PatientClient(notebook, kernel_manager_class=manager).execute()
    """
    with tempfile.TemporaryDirectory(prefix="lesson-kernel-") as folder:
        class LocalKernelManager(AsyncKernelManager):
            def __init__(self, **kwargs):
                if os.name == "posix":
                    kwargs.update(transport="ipc", ip=str(Path(folder) / "kernel"))
                super().__init__(**kwargs)

        yield LocalKernelManager


def run_all(path: Path, model: Optional[str] = None, timeout: int = 900, env: Optional[Dict[str, str]] = None) -> Run:
    """Execute ``path`` as JupyterLab's Run All, then resume after each abort until every cell ran.

    The kernel starts in the notebook's folder, with this process's environment plus ``env``,
    LESSON_MODEL set to ``model`` when given, and matplotlib's inline backend (figures as PNGs).
    Nothing is written to ``path``.
    """
    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    kernel_env = dict(os.environ, MPLBACKEND=INLINE, **(env or {}))
    if model:
        kernel_env["LESSON_MODEL"] = model
    with local_kernels() as manager:
        client = _RunAllClient(notebook, timeout=timeout, kernel_name="python3", allow_errors=True,
                               kernel_manager_class=manager, resources={"metadata": {"path": str(path.parent)}})
        client.execute(env=kernel_env)
    final: Dict[int, str] = {}
    for statuses in client.replies:
        final.update({index: status for index, status in statuses.items() if status != "aborted"})
    return Run(path=path, notebook=notebook, run_all=client.replies[0] if client.replies else {}, final=final,
               resumed=max(len(client.replies) - 1, 0), model=kernel_env.get("LESSON_MODEL", ""))


#: The folder, in a pytest run's base temporary folder, where tests/notebook_runs.py keeps each run.
SAVED_RUNS = "notebook-runs"


def saved_run_name(path: Path, model: str, root: Path) -> str:
    """The name a test run keeps a run of ``path`` under: its place in the lesson (``root``), the
    model, and a hash of the notebook's bytes (a changed notebook is run again).

    >>> saved_run_name(Path("/l/notebooks/01-a.ipynb"), "efficientnet_lite0", Path("/l"))[:46]  # doctest: +SKIP
    'notebooks-01-a.ipynb-efficientnet_lite0-3f2c...'
    """
    path = Path(path).resolve()
    place = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()
    content = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return f"{place.strip('/').replace('/', '-')}-{model}-{content}"


def pytest_temp_roots() -> List[Path]:
    """The base temporary folders of this user's recent pytest runs (pytest keeps the last 3), newest first."""
    base = Path(os.environ.get("PYTEST_DEBUG_TEMPROOT") or tempfile.gettempdir()) / f"pytest-of-{getpass.getuser()}"
    runs = [folder for folder in base.glob("pytest-*") if folder.is_dir() and not folder.is_symlink()]
    return sorted(runs, key=lambda folder: folder.stat().st_mtime, reverse=True)


def saved_run(path: Path, model: str, root: Path, code: List[Path] = ()) -> Optional[Run]:
    """A run of ``path`` with ``model`` that a recent test run kept, or None.

    Only a run of this very notebook (byte for byte, in this checkout) that succeeded, and that was
    made after every file in ``code`` (the helpers, the data) last changed, is taken: anything
    older, or made by another checkout's code, may be stale.
    """
    name = saved_run_name(path, model, root) + ".pickle"
    newest_code = max((file.stat().st_mtime for folder in code for file in Path(folder).rglob("*")
                       if file.is_file() and "__pycache__" not in file.parts), default=0.0)
    for folder in pytest_temp_roots():
        saved = folder / SAVED_RUNS / name
        if not saved.is_file() or saved.stat().st_mtime < newest_code:
            continue
        try:
            with saved.open("rb") as file:
                run, failure = pickle.load(file)
        except Exception:       # noqa: BLE001 - a half-written or foreign file: run the notebook instead
            continue
        if run is None or failure or run.aborted or run.failed():
            continue
        if Path(run.path).resolve().is_relative_to(Path(root).resolve()):    # not another checkout's run
            return run
    return None


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--model", help="LESSON_MODEL for the kernel (default: as set in the environment)")
    args = parser.parse_args(argv)
    stopped = 0
    for path in args.notebooks:
        run = run_all(path, args.model)
        if run.aborted:
            stopped += 1
            print(run_all_report(run))
        else:
            print(f"Run All runs every cell of {path.name}")
        if run.failed():
            print(f"  and these cells fail:\n{describe(run, run.failed())}")
    return 1 if stopped else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
