"""The notebook benchmarks (benchmarks/cell_times.py and memory.py) run from the checkout, on a tiny
notebook, so that they do not rot: every cell timed and flagged by its kind's limit, peak memory
measured and flagged, JSON and Markdown written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_kernels import LIMITS, cell_kind, lesson_notebooks, short_name  # noqa: E402


def _tiny(folder: Path, gigabytes: float = 0.0) -> Path:
    """Four code cells: set-up, a plain one, a training one (the marker on its second line), and an array."""
    cells = [nbformat.v4.new_code_cell("# Set-up: run this cell.\nimport time\nimport numpy as np"),
             nbformat.v4.new_code_cell("# Show, do not type: a slow cell.\ntime.sleep(0.6)"),
             nbformat.v4.new_code_cell("# Show, do not type: the model.\n# Training: 1 epoch\ntime.sleep(0.6)"),
             nbformat.v4.new_markdown_cell("Some text."),
             nbformat.v4.new_code_cell(f"big = np.ones({int(gigabytes * 1e9 / 8)})\nprint(big.sum())")]
    cells[0].metadata["tags"] = ["setup"]
    path = folder / "tiny.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_cell_kinds_and_the_notebooks_found():
    assert cell_kind({"source": "# Set-up: run this cell\nimport torch"}) == "setup"
    assert cell_kind({"source": "x = 1", "metadata": {"tags": ["setup"]}}) == "setup"
    assert cell_kind({"source": "# Show, do not type: x\n# Training: 8 epochs\nfit()"}) == "training"
    assert cell_kind({"source": "fit()", "metadata": {"tags": ["training"]}}) == "training"
    assert cell_kind({"source": "print('# Training: no')"}) == "cell"
    assert (LIMITS["cell"], LIMITS["setup"], LIMITS["training"]) == (10.0, 20.0, 20.0)
    found = lesson_notebooks()
    assert ROOT / "notebooks" / "09-shortcut.ipynb" in found and not any("handouts" in str(p) for p in found)
    assert short_name(ROOT / "notebooks" / "self-study" / "x.ipynb") == "self-study/x"


def test_lesson_notebooks_takes_the_self_study_ones(tmp_path):
    (tmp_path / "notebooks" / "self-study").mkdir(parents=True)
    for name in ("notebooks/02-b.ipynb", "notebooks/01-a.ipynb", "notebooks/self-study/frozen.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.relative_to(tmp_path).as_posix() for p in lesson_notebooks(tmp_path)] == \
        ["notebooks/01-a.ipynb", "notebooks/02-b.ipynb", "notebooks/self-study/frozen.ipynb"]


def test_notebooks_py_times_every_cell_and_flags_those_over_their_limit(tmp_path):
    notebook = _tiny(tmp_path)
    # limits of 0.4 s a cell and 1 s a set-up or training cell: the 0.6 s cell is over, the training one is not
    done = _run("benchmarks/cell_times.py", "--models", "efficientnet_lite0", "--warm-up", "0", "--limit-cell", "0.4",
                "--limit-long", "1", "--json", str(tmp_path / "t.json"), "--markdown", str(tmp_path / "t.md"),
                str(notebook))
    assert done.returncode == 1, done.stdout + done.stderr                     # a cell over its limit
    result, = json.loads((tmp_path / "t.json").read_text())["results"]
    cells = {c["index"]: c for c in result["cells"]}
    assert sorted(cells) == [0, 1, 2, 4] and result["model"] == "efficientnet_lite0" and result["notebook"] == "tiny"
    assert [cells[i]["kind"] for i in (0, 1, 2, 4)] == ["setup", "cell", "training", "cell"]
    assert 0.55 <= cells[1]["seconds"] < 5 and 0.55 <= cells[2]["seconds"] < 5
    assert result["over"] == [1] and cells[1]["over"] and not cells[2]["over"] and cells[2]["limit"] == 1.0
    assert "cell   1 cell" in done.stdout and "OVER 0.4 s" in done.stdout and "over the limit: tiny cell 1" in done.stdout
    table = (tmp_path / "t.md").read_text()
    assert table.startswith("| notebook | efficientnet_lite0: total | efficientnet_lite0: slowest cell |")
    assert "| tiny |" in table and "tiny, cell 1 (cell, limit 0.4 s)" in table
    # within the limits: exit status 0
    done = _run("benchmarks/cell_times.py", "--models", "efficientnet_lite0", "--warm-up", "0", str(notebook))
    assert done.returncode == 0 and "over the limit: none" in done.stdout, done.stdout + done.stderr


def test_memory_py_measures_the_kernels_peak_and_flags_it(tmp_path):
    notebook = _tiny(tmp_path, gigabytes=0.32)
    done = _run("benchmarks/memory.py", "--model", "efficientnet_lite0", "--per-cell", "--limit-gb", "0.2",
                "--json", str(tmp_path / "m.json"), "--markdown", str(tmp_path / "m.md"), str(notebook))
    assert done.returncode == 1, done.stdout + done.stderr                     # 0.32 GB of ones: over 0.2 GB
    result, = json.loads((tmp_path / "m.json").read_text())["results"]
    assert result["over"] and 0.35 < result["peak_gb"] < 1.5
    cells = {c["index"]: c for c in result["cells"]}
    assert cells[4]["peak_gb"] - cells[2]["after_gb"] > 0.25                   # the array shows in its own cell
    assert "over the target: tiny with efficientnet_lite0" in done.stdout
    assert (tmp_path / "m.md").read_text().splitlines()[2].startswith("| tiny | 0.")
    done = _run("benchmarks/memory.py", "--model", "efficientnet_lite0", str(notebook))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("script", ["cell_times.py", "memory.py"])
def test_the_benchmarks_say_what_they_do(script):
    done = _run(f"benchmarks/{script}", "--help")
    assert done.returncode == 0 and "--json" in done.stdout and "--markdown" in done.stdout


def test_no_script_folder_module_shadows_an_installed_package():
    """benchmarks/ and tools/ go on sys.path in the tests: a module there named like an installed
    package (benchmarks/kernels.py against Hugging Face's `kernels`) breaks that package's imports."""
    import importlib.metadata

    installed = set(importlib.metadata.packages_distributions())
    root = Path(__file__).resolve().parents[1]
    folders = {folder: {path.stem for path in (root / folder).glob("*.py")} - {"__init__", "conftest"}
               for folder in ("benchmarks", "tools", "tests")}
    ours = set().union(*folders.values())
    assert not ours & installed, f"rename these modules, they shadow installed packages: {sorted(ours & installed)}"
    for first, second in (("benchmarks", "tools"), ("benchmarks", "tests"), ("tools", "tests")):
        assert not folders[first] & folders[second], f"{first}/ and {second}/ share module names"
