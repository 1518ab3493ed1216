"""The Colab/pip route, tested: the helpers installed from their wheel work outside the checkout.

Builds the wheel (offline, no build isolation), installs it into a throwaway folder with --no-deps,
copies the notebook that uses Captum to a folder outside the checkout, and runs it with only that
folder on PYTHONPATH (the venv's packages are the dependencies). The label file, the manifest and
the figures must then come from the installed package."""

from __future__ import annotations

import base64
import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from runall import PatientClient                     # tools/: nbclient, waiting for replies a second at a time

ROOT = Path(__file__).resolve().parent.parent


def notebook_using_captum() -> Path:
    """The first notebook whose code imports captum (the episode the pip route used to break)."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code = "\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "code")
        if "from captum" in code or "import captum" in code:
            return path
    pytest.fail("no notebook imports captum any more: pick another notebook for the wheel route")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The helpers' wheel, built from a copy of the sources and installed into a target folder."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE.md"):
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, source / name)
    for folder in ("helpers", "data"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(base / "dist"),
                          str(source)], check=True, timeout=300, cwd=base)
    wheel, = (base / "dist").glob("gradcam_lesson_helpers-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"helpers/data/imagenet_classes.txt", "helpers/data/manifest.json", "helpers/check.py"} <= set(names)
    target = base / "target"
    subprocess.run(pip + ["install", "--no-deps", "--no-index", "-q", "--target", str(target), str(wheel)],
                   check=True, timeout=300, cwd=base)
    assert (target / "helpers" / "data" / "manifest.json").is_file() and not (target / "data").exists()
    return target


def test_the_installed_helpers_run_an_episode_outside_the_checkout(installed, tmp_path, monkeypatch, mirror):
    source = notebook_using_captum()
    workdir = tmp_path / "learner"
    workdir.mkdir()
    notebook = nbformat.read(source, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(
        "import sys, helpers, helpers._files as files, helpers.labels as labels, helpers.viz as viz\n"
        f"assert helpers.__file__.startswith({str(installed)!r}), helpers.__file__\n"
        f"assert viz.__file__.startswith({str(installed)!r}), viz.__file__\n"
        "assert not files.REPO_DATA.is_dir(), files.REPO_DATA       # no data/ beside the installed helpers\n"
        f"assert not any(p and {str(ROOT)!r} == str(__import__('pathlib').Path(p).resolve()) for p in sys.path)\n"
        "print('FROM', helpers.__file__, len(labels.LABELS), labels.LABELS[281])"))
    copy = workdir / source.name
    nbformat.write(notebook, copy)

    monkeypatch.setenv("PYTHONPATH", str(installed))
    monkeypatch.setenv("LESSON_MODEL", "efficientnet_lite0")
    monkeypatch.setenv("LESSON_OFFLINE", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)        # the kernel's inline backend: figures as PNG outputs
    monkeypatch.chdir(workdir)
    client = PatientClient(notebook, timeout=600, kernel_name="python3",
                           resources={"metadata": {"path": str(workdir)}})
    client.execute()

    last = notebook.cells[-1].outputs
    text = "".join(output.get("text", "") for output in last)
    assert f"FROM {installed / 'helpers' / '__init__.py'} 1000 tabby" in text, text
    figures = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
               if "image/png" in output.get("data", {})]
    assert figures, "the episode drew no figure"
    for figure in figures:                                  # real PNGs, drawn by the installed helpers' code
        png = base64.b64decode(figure["data"]["image/png"])
        width, height = struct.unpack(">II", png[16:24])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and width >= 200 and height >= 100, (width, height)
    assert not list(workdir.glob("*.py"))                   # nothing of the checkout was copied
    assert os.environ["PYTHONPATH"] == str(installed)
