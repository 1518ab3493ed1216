"""Helpers for the GradCAM lesson: load images and models, compute GradCAM, show and explore it.

The plain functions come first; each module holds one concern:

- ``labels``: ``LABELS``, ``LESSON_CLASSES``, ``class_name``, ``find_classes``
- ``downloads``: the lesson's files, from cache, mirror or web (``fetch``)
- ``images``: ``load_image``
- ``models``: ``load_model``, ``default_target_layers``, ``layer_choices``
- ``cam``: ``gradcam`` and the other CAM methods, on one shared mechanism
- ``viz``: ``overlay``, ``viz_gradcam``
- ``widgets``: ``explore``, the interactive explorer
"""

from .cam import METHODS, compute_cams, gradcam
from .downloads import fetch, lesson_images
from .images import IMAGENET_MEAN, IMAGENET_STD, load_image
from .labels import LABELS, LESSON_CLASSES, class_name, find_classes
from .models import default_target_layers, layer_choices, load_model
from .viz import overlay, viz_gradcam
from .widgets import explore

__all__ = [
    "LABELS", "LESSON_CLASSES", "class_name", "find_classes",
    "fetch", "lesson_images",
    "IMAGENET_MEAN", "IMAGENET_STD", "load_image",
    "load_model", "default_target_layers", "layer_choices",
    "METHODS", "compute_cams", "gradcam",
    "overlay", "viz_gradcam",
    "explore",
]
