"""Helpers for the GradCAM lesson: load images and models, compute GradCAM, show and explore it.

The plain functions come first; each module holds one concern:

- ``labels``: ``LABELS``, ``LESSON_CLASSES``, ``class_name``, ``find_classes``, ``most_probable``
- ``downloads``: the lesson's files, from cache, mirror or web (``fetch``)
- ``images``: ``load_image``
- ``models``: ``load_model``, ``default_target_layers``, ``layer_choices``
- ``targets``: which score a map explains (a class id, or any function of the model's output)
- ``cam``: ``gradcam`` and the other CAM methods, on one shared mechanism
- ``viz``: ``overlay``, ``viz_gradcam``
- ``widgets``: ``explore``, the interactive explorer
- ``audit``: ``audit`` (a whole dataset's table: ``from helpers.audit import audit``, or
  ``python -m helpers.audit FOLDER``), ``suspects``, ``contact_sheet``

Names are imported on first use (PEP 562), so that ``python -m helpers.check`` and
``python -m helpers.setup`` start without torch: they can then say that torch is missing.
``from helpers import gradcam`` and ``helpers.cam`` work as usual.

Imported in IPython (JupyterLab, nbval, Colab, Binder, a terminal IPython), the package also
registers the notebooks' cell magic ``%%expect_error`` (``helpers.solutions``): the set-up cell's
``from helpers import ...`` is all a notebook needs, no ``%load_ext`` line.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, List

#: Each public name, and the module that defines it.
_HOMES = {
    "METHODS": "cam", "compute_cams": "cam", "gradcam": "cam",
    "fetch": "downloads", "lesson_images": "downloads",
    "IMAGENET_MEAN": "images", "IMAGENET_STD": "images", "load_image": "images",
    "LABELS": "labels", "LESSON_CLASSES": "labels", "class_name": "labels", "find_classes": "labels",
    "CAT_CLASSES": "labels", "DOG_CLASSES": "labels", "most_probable": "labels",
    "default_target_layers": "models", "layer_choices": "models", "load_model": "models",
    "overlay": "viz", "viz_gradcam": "viz",
    "explore": "widgets",
}

__all__ = [
    "LABELS", "LESSON_CLASSES", "class_name", "find_classes", "CAT_CLASSES", "DOG_CLASSES", "most_probable",
    "fetch", "lesson_images",
    "IMAGENET_MEAN", "IMAGENET_STD", "load_image",
    "load_model", "default_target_layers", "layer_choices",
    "METHODS", "compute_cams", "gradcam",
    "overlay", "viz_gradcam",
    "explore",
]


def __getattr__(name: str) -> Any:
    """Import a public name (or a submodule such as ``helpers.cam``) the first time it is asked for."""
    if name in _HOMES:
        value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    elif not name.startswith("__"):
        try:
            value = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise                                   # the submodule exists but needs a missing package
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))


def _register_magics() -> None:
    """``%%expect_error`` in the IPython that imports the package, if any (IPython itself is not
    imported here: outside IPython nothing happens)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    if shell is not None and hasattr(shell, "register_magic_function"):
        importlib.import_module(".solutions", __name__).load_ipython_extension(shell)


_register_magics()
