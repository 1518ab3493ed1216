#!/usr/bin/env python3
"""How long does each notebook take to run, top to bottom, on this machine?

    python benchmarks/notebooks.py [--models efficientnet_lite0 resnet50_untrained] [NOTEBOOK ...]

Runs each notebook in a fresh kernel (nbclient) once per model, offline, with the lesson
data from LESSON_DATA_MIRROR or the cache. "resnet50_untrained" is ResNet-50 with random
weights: participants' speed with the real ResNet-50, without downloading it.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def run(path: Path, model: str) -> float:
    notebook = nbformat.read(path, as_version=4)
    os.environ.update(LESSON_MODEL=model, LESSON_OFFLINE="1", MPLBACKEND="Agg")
    started = time.perf_counter()
    NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["efficientnet_lite0", "resnet50_untrained"])
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args()
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    print(f"{'notebook':32s} " + " ".join(f"{m:>20s}" for m in args.models))
    for path in paths:
        times = [run(path.resolve(), model) for model in args.models]
        print(f"{path.name:32s} " + " ".join(f"{t:19.1f}s" for t in times), flush=True)


if __name__ == "__main__":
    main()
