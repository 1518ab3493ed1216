#!/usr/bin/env python3
"""How much memory does each notebook need? Peak resident memory (RSS) of its kernel and the
kernel's child processes, top to bottom in a fresh kernel, once per model:

    python benchmarks/memory.py [--model efficientnet_lite0 --model resnet50_untrained] [NOTEBOOK ...]

Runs offline, with the lesson data from LESSON_DATA_MIRROR or the cache. "resnet50_untrained" is
ResNet-50 with random weights: the memory of the model participants use, without downloading it.
RSS is sampled every 50 ms (psutil when installed, else /proc on Linux); a hub should plan for
the largest figure plus JupyterLab's own server (about 0.2 GB per user).
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
LIMIT_GB = 1.5


def _tree_rss_psutil(pid: int) -> int:
    import psutil

    try:
        process = psutil.Process(pid)
        processes = [process] + process.children(recursive=True)
    except psutil.Error:
        return 0
    total = 0
    for each in processes:
        try:
            total += each.memory_info().rss
        except psutil.Error:
            pass
    return total


def _tree_rss_proc(pid: int) -> int:
    """The same from /proc (Linux): VmRSS of the process and, recursively, its children."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def tree_rss() -> Callable[[int], int]:
    try:
        import psutil  # noqa: F401
        return _tree_rss_psutil
    except ImportError:
        return _tree_rss_proc


class PeakMonitor(threading.Thread):
    """Samples the RSS of a kernel (found through the client once it has started) and its children.

    ``peak`` is the whole run's; ``cell_peak`` and ``now`` are those since :meth:`new_cell`.
    """

    def __init__(self, client: NotebookClient, interval: float = 0.05):
        super().__init__(daemon=True)
        self.client, self.interval, self.peak, self.cell_peak, self.now = client, interval, 0, 0, 0
        self._stop_event = threading.Event()
        self._measure = tree_rss()

    def _kernel_pid(self) -> Optional[int]:
        manager = getattr(self.client, "km", None)
        provisioner = getattr(manager, "provisioner", None)
        return getattr(provisioner, "pid", None)

    def run(self) -> None:
        while not self._stop_event.is_set():
            pid = self._kernel_pid()
            if pid:
                self.now = self._measure(pid)
                self.peak, self.cell_peak = max(self.peak, self.now), max(self.cell_peak, self.now)
            time.sleep(self.interval)

    def new_cell(self) -> None:
        self.cell_peak = self.now

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def peak_rss(path: Path, model: str, per_cell: bool = False) -> float:
    """Run the notebook at ``path`` in a fresh kernel with ``LESSON_MODEL=model``; peak RSS in GB.

    With ``per_cell``, also print each code cell's peak and what it leaves behind.
    """
    notebook = nbformat.read(path, as_version=4)
    os.environ.update(LESSON_MODEL=model, LESSON_OFFLINE="1", MPLBACKEND="Agg")
    client = NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    monitor = PeakMonitor(client)
    if per_cell:
        def started(cell, cell_index, **_):
            monitor.new_cell()

        def finished(cell, cell_index, **_):
            time.sleep(3 * monitor.interval)
            first = next((line for line in cell.source.splitlines() if line.strip()), "")[:60]
            print(f"  cell {cell_index:3d}: peak {monitor.cell_peak / 1e9:5.2f} GB, "
                  f"after {monitor.now / 1e9:5.2f} GB  {first}", flush=True)

        client.on_cell_execute, client.on_cell_executed = started, finished
    monitor.start()
    try:
        client.execute()
    finally:
        peak = monitor.stop()
    return peak / 1e9


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", dest="models",
                        help="LESSON_MODEL to run with (repeat it; default: the stand-in and resnet50_untrained)")
    parser.add_argument("--per-cell", action="store_true", help="also print each cell's peak")
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    args.models = args.models or ["efficientnet_lite0", "resnet50_untrained"]
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    print(f"peak RSS of the kernel and its children, GB (target: at most {LIMIT_GB} GB)")
    print(f"{'notebook':32s} " + " ".join(f"{m:>20s}" for m in args.models), flush=True)
    over = []
    for path in paths:
        peaks = [peak_rss(path.resolve(), model, args.per_cell) for model in args.models]
        over += [f"{path.name} with {m}" for m, p in zip(args.models, peaks) if p > LIMIT_GB]
        print(f"{path.name:32s} " + " ".join(f"{p:18.2f}GB" for p in peaks), flush=True)
    if over:
        print("over the target: " + ", ".join(over))
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
