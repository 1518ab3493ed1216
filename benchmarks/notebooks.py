#!/usr/bin/env python3
"""How long does each notebook take to run, top to bottom, on this machine? And its slowest cell?

    python benchmarks/notebooks.py [--models efficientnet_lite0 resnet50_untrained] [--warm-up N]
                                   [--json FILE] [NOTEBOOK ...]

Runs each notebook in a fresh kernel (nbclient) once per model, offline, with the lesson
data from LESSON_DATA_MIRROR or the cache. "resnet50_untrained" is ResNet-50 with random
weights: participants' speed with the real ResNet-50, without downloading it.

Timings are *warm*: each notebook first runs ``--warm-up`` times (default 1) untimed, so that
files, imports and the data cache are as they are for a learner's second run. The times the
episodes quote come from this script: quote them with the machine and the model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import datetime
from pathlib import Path
from typing import Dict, List

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def _seconds(cell) -> float:
    timing = cell.get("metadata", {}).get("execution", {})
    try:
        start = datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return 0.0
    return (end - start).total_seconds()


def run(path: Path, model: str) -> Dict[str, object]:
    """Run one notebook with one model; its total time and its slowest cell."""
    notebook = nbformat.read(path, as_version=4)
    os.environ.update(LESSON_MODEL=model, LESSON_OFFLINE="1", MPLBACKEND="Agg")
    started = time.perf_counter()
    NotebookClient(notebook, timeout=900, kernel_name="python3", record_timing=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    total = time.perf_counter() - started
    cells = [(index, _seconds(cell), cell.source.strip().splitlines()[0][:60] if cell.source.strip() else "")
             for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    index, seconds, first_line = max(cells, key=lambda c: c[1]) if cells else (-1, 0.0, "")
    return {"total_s": round(total, 1), "slowest_cell": index, "slowest_cell_s": round(seconds, 1),
            "slowest_cell_starts": first_line}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["efficientnet_lite0", "resnet50_untrained"])
    parser.add_argument("--warm-up", type=int, default=1, help="untimed runs of each notebook first (default 1)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args()
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; warm (after {args.warm_up} untimed run(s))")
    print(f"{'notebook':28s} " + " ".join(f"{m + ' total / slowest cell':>44s}" for m in args.models))
    results: List[Dict[str, object]] = []
    for path in paths:
        row = []
        for model in args.models:
            for _ in range(args.warm_up):
                run(path.resolve(), model)
            result = run(path.resolve(), model)
            results.append({"notebook": path.name, "model": model, **result})
            row.append(f"{result['total_s']:8.1f} s / {result['slowest_cell_s']:6.1f} s (cell {result['slowest_cell']})")
        print(f"{path.name:28s} " + " ".join(f"{text:>44s}" for text in row), flush=True)
    for result in results:
        print(f"  {result['notebook']} [{result['model']}] slowest cell {result['slowest_cell']}: "
              f"{result['slowest_cell_starts']!r}")
    if args.json:
        args.json.write_text(json.dumps({"machine": platform.machine(), "cpus": os.cpu_count(),
                                         "warm_up": args.warm_up, "results": results}, indent=2))


if __name__ == "__main__":
    main()
