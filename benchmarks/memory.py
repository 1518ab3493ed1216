#!/usr/bin/env python3
"""How much memory does each notebook need? Peak resident memory (RSS) of its kernel and the
kernel's child processes, top to bottom in a fresh kernel, once per model:

    python benchmarks/memory.py [--model efficientnet_lite0 --model resnet50_untrained] [--per-cell]
                                [--json FILE] [--markdown FILE] [NOTEBOOK ...]

Runs every notebook (by default the episodes' and the self-study ones, ``notebooks/*.ipynb`` and
``notebooks/self-study/*.ipynb``) offline, with the lesson data from LESSON_DATA_MIRROR or the
cache. "resnet50_untrained" is ResNet-50 with random weights: the memory of the model
participants use, without downloading it. RSS is sampled every 50 ms (psutil when installed,
else /proc on Linux); a hub should plan for the largest figure plus JupyterLab's own server
(about 0.2 GB per user). Exit status 1 when a notebook peaks above the limit (1.5 GB).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kernels import MEMORY_LIMIT_GB, MODELS, errors, execute, first_line, lesson_notebooks, markdown_table, \
    short_name  # noqa: E402

LIMIT_GB = MEMORY_LIMIT_GB


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

    def __init__(self, interval: float = 0.05):
        super().__init__(daemon=True)
        self.client, self.interval, self.peak, self.cell_peak, self.now = None, interval, 0, 0, 0
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


def peak_rss(path: Path, model: str, per_cell: bool = False, cells: Optional[List[Dict[str, object]]] = None,
             threads: Optional[int] = None) -> float:
    """Run the notebook at ``path`` in a fresh kernel with ``LESSON_MODEL=model``; peak RSS in GB.

    With ``per_cell``, also print each code cell's peak and what it leaves behind; ``cells``, a
    list, receives them.
    """
    monitor = PeakMonitor()

    def started(index, cell):
        monitor.new_cell()

    def ended(index, cell, seconds):
        time.sleep(3 * monitor.interval)
        if cells is not None:
            cells.append({"index": index, "peak_gb": round(monitor.cell_peak / 1e9, 3),
                          "after_gb": round(monitor.now / 1e9, 3), "first_line": first_line(cell)})
        if per_cell:
            print(f"  cell {index:3d}: peak {monitor.cell_peak / 1e9:5.2f} GB, after {monitor.now / 1e9:5.2f} GB  "
                  f"{first_line(cell)[:60]}", flush=True)

    def kernel_up(client):
        monitor.client = client

    monitor.start()
    try:
        notebook = execute(path, model, threads, on_start=started, on_end=ended, on_kernel=kernel_up)
    finally:
        peak = monitor.stop()
    for error in errors(notebook):
        print(f"  {short_name(path)} [{model}]: error in {error}", flush=True)
    return peak / 1e9


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", dest="models",
                        help="LESSON_MODEL to run with (repeat it; default: the stand-in and resnet50_untrained)")
    parser.add_argument("--per-cell", action="store_true", help="also print each cell's peak")
    parser.add_argument("--threads", type=int, default=None, help="PyTorch's CPU threads in the kernel")
    parser.add_argument("--limit-gb", type=float, default=LIMIT_GB, help=f"the limit (default {LIMIT_GB} GB)")
    parser.add_argument("--json", type=Path, default=None, help="also write the peaks (and each cell's) to this file")
    parser.add_argument("--markdown", type=Path, default=None, help="also write README's table to this file")
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    args.models = args.models or list(MODELS)
    paths = args.notebooks or lesson_notebooks()
    print(f"peak RSS of the kernel and its children, GB (target: at most {args.limit_gb} GB)")
    print(f"{'notebook':32s} " + " ".join(f"{m:>20s}" for m in args.models), flush=True)
    over, results, rows = [], [], []
    for path in paths:
        peaks = []
        for model in args.models:
            cells: List[Dict[str, object]] = []
            peak = peak_rss(path.resolve(), model, args.per_cell, cells, args.threads)
            peaks.append(peak)
            results.append({"notebook": short_name(path), "model": model, "peak_gb": round(peak, 3),
                            "over": peak > args.limit_gb, "cells": cells})
        over += [f"{short_name(path)} with {m}" for m, p in zip(args.models, peaks) if p > args.limit_gb]
        rows.append([short_name(path)] + [f"{p:.2f} GB" + (" (over)" if p > args.limit_gb else "") for p in peaks])
        print(f"{short_name(path):32s} " + " ".join(f"{p:18.2f}GB" for p in peaks), flush=True)
    if over:
        print("over the target: " + ", ".join(over))
    if args.json:
        args.json.write_text(json.dumps({"limit_gb": args.limit_gb, "results": results}, indent=2))
    if args.markdown:
        args.markdown.write_text(markdown_table(["notebook"] + args.models, rows, right=range(1, len(args.models) + 1)))
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
