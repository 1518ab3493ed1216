#!/usr/bin/env python3
"""How long does each cell of each notebook take, and which cells are over their limit?

    python benchmarks/cell_times.py [--models efficientnet_lite0 resnet50_untrained] [--warm-up N]
                                   [--threads N] [--json FILE] [--markdown FILE] [NOTEBOOK ...]

Runs every notebook (by default the episodes' and the self-study ones, ``notebooks/*.ipynb`` and
``notebooks/self-study/*.ipynb``) top to bottom in a fresh kernel, once per model, offline, with
the lesson data from LESSON_DATA_MIRROR or the cache. "resnet50_untrained" is ResNet-50 with
random weights: participants' speed with the real ResNet-50, without downloading it.

Every code cell's time is reported, and flagged when over its limit: 10 s for a cell, 20 s for
a set-up cell (tag ``setup``, or beginning ``# Set-up:``) or a training cell (tag ``training``,
or holding a line that begins ``# Training:``). Limits are for a 2-core CPU, idle: measure on an
idle machine, with ``--threads 2`` for a learner's laptop. Timings are *warm*: each notebook
first runs ``--warm-up`` times (default 1) untimed, so that files, imports and the data cache
are as they are for a learner's second run. Exit status 1 when a cell is over its limit or fails.
``--json`` keeps every cell's time; ``--markdown`` writes the table for README.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kernels import (LIMITS, MODELS, cell_kind, errors, execute, first_line, lesson_notebooks,  # noqa: E402
                     markdown_table, short_name)


def time_cells(path: Path, model: str, threads: Optional[int] = None,
               limits: Dict[str, float] = LIMITS) -> Dict[str, object]:
    """Run one notebook with one model in a fresh kernel; every code cell's seconds, kind and limit."""
    cells: List[Dict[str, object]] = []

    def ended(index, cell, seconds):
        kind = cell_kind(cell)
        cells.append({"index": index, "kind": kind, "seconds": round(seconds, 2), "limit": limits[kind],
                      "over": seconds > limits[kind], "first_line": first_line(cell)})

    started = time.perf_counter()
    notebook = execute(path, model, threads, on_end=ended)
    total = time.perf_counter() - started
    slowest = max(cells, key=lambda c: c["seconds"], default={"index": -1, "seconds": 0.0, "first_line": ""})
    return {"notebook": short_name(path), "model": model, "total_s": round(total, 1),
            "cells_s": round(sum(c["seconds"] for c in cells), 1), "slowest_cell": slowest["index"],
            "slowest_cell_s": slowest["seconds"], "slowest_cell_starts": slowest["first_line"],
            "over": [c["index"] for c in cells if c["over"]], "errors": errors(notebook), "cells": cells}


def markdown(results: List[Dict[str, object]], models: List[str]) -> str:
    """README's table: per notebook and model, the total and the slowest cell; then every cell over its limit."""
    by = {(r["notebook"], r["model"]): r for r in results}
    notebooks = list(dict.fromkeys(r["notebook"] for r in results))
    header = ["notebook"] + [f"{m}: {what}" for m in models for what in ("total", "slowest cell")]
    rows = []
    for name in notebooks:
        row = [name]
        for model in models:
            r = by.get((name, model))
            row += ["" if r is None else f"{r['total_s']:.1f} s",
                    "" if r is None else f"{r['slowest_cell_s']:.1f} s (cell {r['slowest_cell']})"]
        rows.append(row)
    text = markdown_table(header, rows, right=range(1, len(header)))
    over = [f"- {r['notebook']}, cell {c['index']} ({c['kind']}, limit {c['limit']:g} s), {r['model']}: "
            f"{c['seconds']:.1f} s: `{c['first_line']}`" for r in results for c in r["cells"] if c["over"]]
    return text + "\n" + ("Cells over their limit:\n\n" + "\n".join(over) if over else "No cell over its limit.") + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--warm-up", type=int, default=1, help="untimed runs of each notebook first (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="PyTorch's CPU threads in the kernel "
                        "(OMP_NUM_THREADS; default: PyTorch's own choice)")
    parser.add_argument("--json", type=Path, default=None, help="also write every cell's time to this JSON file")
    parser.add_argument("--markdown", type=Path, default=None, help="also write README's table to this file")
    parser.add_argument("--limit-cell", type=float, default=LIMITS["cell"], help="seconds a cell may take")
    parser.add_argument("--limit-long", type=float, default=LIMITS["setup"],
                        help="seconds a set-up or training cell may take")
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    limits = {"cell": args.limit_cell, "setup": args.limit_long, "training": args.limit_long}
    paths = args.notebooks or lesson_notebooks()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, threads: {args.threads or 'default'}; "
          f"warm (after {args.warm_up} untimed run(s)); limits: {limits['cell']:.0f} s a cell, "
          f"{limits['setup']:.0f} s a set-up or training cell", flush=True)
    results: List[Dict[str, object]] = []
    for path in paths:
        for model in args.models:
            for _ in range(args.warm_up):
                execute(path, model, args.threads)
            result = time_cells(path, model, args.threads, limits)
            results.append(result)
            print(f"\n{result['notebook']} [{model}]: {result['total_s']:.1f} s in all, "
                  f"{result['cells_s']:.1f} s in its cells", flush=True)
            for cell in result["cells"]:
                flag = f"  OVER {cell['limit']:g} s" if cell["over"] else ""
                print(f"  cell {cell['index']:3d} {cell['kind']:8s} {cell['seconds']:7.2f} s{flag:12s} "
                      f"{cell['first_line']}", flush=True)
            for error in result["errors"]:
                print(f"  error in {error}", flush=True)
    over = [f"{r['notebook']} cell {i} [{r['model']}]" for r in results for i in r["over"]]
    failed = [f"{r['notebook']} [{r['model']}]" for r in results if r["errors"]]
    print("\nover the limit: " + (", ".join(over) if over else "none"))
    if failed:
        print("cells failed in: " + ", ".join(failed))
    if args.json:
        args.json.write_text(json.dumps({"machine": platform.machine(), "cpus": os.cpu_count(),
                                         "threads": args.threads, "warm_up": args.warm_up, "limits": limits,
                                         "results": results}, indent=2))
    if args.markdown:
        args.markdown.write_text(markdown(results, args.models))
    return 1 if over or failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
