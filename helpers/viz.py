"""Showing heatmaps: colour them, lay them over the photo, and say which class they explain.

>>> import numpy as np
>>> from helpers import overlay
>>> rgb = np.zeros((2, 2, 3), np.float32); cam = np.array([[0, 0], [1, 1]], np.float32)
>>> overlay(rgb, cam, alpha=1.0, cmap="gray")[..., 0].tolist()
[[0, 0], [255, 255]]
"""

from __future__ import annotations

from functools import lru_cache
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from .cam import Explanation, check_input, explain
from .targets import Target, chosen_classes, class_label, class_names_of, describe_target, probability_of

#: Colour maps offered by the lesson. The default, inferno, is perceptually uniform and readable by
#: colour-blind readers (so are viridis, cividis and magma); jet stays selectable since many papers use it.
DEFAULT_CMAP = "inferno"
COLORMAPS = ("inferno", "magma", "viridis", "cividis", "jet", "gray")


@lru_cache(maxsize=16)
def colormap_table(cmap: str) -> np.ndarray:
    """A [256, 3] float32 lookup table of a matplotlib colour map, in [0, 1]."""
    from matplotlib import colormaps

    try:
        table = colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3]
    except KeyError as error:
        raise ValueError(f"unknown colour map {cmap!r}; try one of {', '.join(COLORMAPS)}") from error
    return table.astype(np.float32)


def overlay(rgb_image: np.ndarray, cam: np.ndarray, alpha: float = 0.5, cmap: str = DEFAULT_CMAP) -> np.ndarray:
    """Colour ``cam`` (values in [0, 1]) and blend it over ``rgb_image``; returns uint8 RGB.

    ``alpha`` is the heatmap's weight: 0 shows only the photo, 1 only the heatmap.
    ``cmap`` is a matplotlib colour map name; the default, inferno, runs from black (no evidence)
    to bright yellow (strongest evidence). ``cmap="jet"`` gives the blue-to-red map of many papers.
    Colours stay RGB throughout (no OpenCV BGR), so ``plt.imshow`` shows them truly.
    """
    rgb_image = np.asarray(rgb_image, dtype=np.float32)
    cam = np.asarray(cam, dtype=np.float32)
    if rgb_image.ndim != 3 or rgb_image.shape[2] != 3:
        raise ValueError(f"rgb_image must be [H, W, 3], got shape {rgb_image.shape}")
    if cam.shape != rgb_image.shape[:2]:
        raise ValueError(f"the heatmap is {cam.shape} but the image is {rgb_image.shape[:2]}; they must match")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if rgb_image.size and (rgb_image.min() < 0 or rgb_image.max() > 1):
        raise ValueError("rgb_image must hold values in [0, 1] (the rgb_image from load_image)")
    index = np.clip(cam * 255.0 + 0.5, 0, 255).astype(np.uint8)
    heat = colormap_table(cmap)[index]
    blended = (1.0 - alpha) * rgb_image + alpha * heat
    return np.clip(blended * 255.0 + 0.5, 0, 255).astype(np.uint8)


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the classes of one image's logits."""
    return torch.softmax(logits.reshape(-1).float(), dim=0)


def viz_gradcam(model: nn.Module, target_layers: Sequence[nn.Module], class_id: Target,
                input_tensor: torch.Tensor, rgb_image: np.ndarray, *, method: str = "GradCAM",
                alpha: float = 0.5, cmap: str = DEFAULT_CMAP, show: bool = True,
                class_names: Optional[Sequence[str]] = None, probability: object = "auto") -> np.ndarray:
    """Compute a GradCAM heatmap for ``class_id`` (None: the predicted class) and show it over the image.

    ``class_id`` may also be a target, a function of the model's output that gives one number
    (``helpers.targets``: pytorch-grad-cam's targets work unchanged). Prints what is explained,
    with its name and probability, shows the overlay in true colours, and returns it as a uint8
    RGB array ``[H, W, 3]``. ``class_names``: the model's class names (by default Hugging Face's
    ``config.id2label``, ImageNet's for 1000 classes, else "class k"); ``probability``:
    "softmax", "sigmoid" or None (the scores as they are); "auto" follows the model, and a line
    says when that is an assumption.
    """
    check_input(input_tensor)
    if input_tensor.shape[0] != 1:
        count = input_tensor.shape[0]
        raise ValueError(f"viz_gradcam shows one image, but input_tensor holds {count}: pass one, for example "
                         f"`viz_gradcam(model, target_layers, class_id, input_tensor[:1], rgb_image)` with that "
                         f"image's rgb_image; for the maps of all {count}, "
                         f"`maps, logits = compute_cams(model, target_layers, [class_id] * {count}, input_tensor)`")
    found = explain(model, target_layers, [class_id], input_tensor, method)
    print(describe(model, found, class_names, probability))
    picture = overlay(rgb_image, found.maps[0], alpha=alpha, cmap=cmap)
    if show:
        import matplotlib.pyplot as plt

        names = None if found.logits is None else class_names_of(model, found.logits.shape[1], class_names)
        chosen = chosen_classes(found.output, found.targets)[0] if found.logits is not None else None
        what = class_label(chosen, names) if chosen is not None else describe_target(class_id)
        figure, axes = plt.subplots(figsize=(5, 5))
        axes.imshow(picture)
        model_name = getattr(model, "lesson_name", type(model).__name__)
        axes.set_title(f"{method} for {what}\n({model_name})", fontsize=10)
        axes.axis("off")
        plt.show()
    return picture


def describe(model: nn.Module, found: Explanation, class_names: Optional[Sequence[str]] = None,
             probability: object = "auto") -> str:
    """What ``found`` (one image) explains, in a line or two: the class or target, and the model's top class.

    "Predicted class: 243 · bull mastiff (p = 0.38)"; "Target class: 3 · cat (p = 0.482); the
    model's top class is ..." (or "..., the model's top class" when it is);
    "Target: SemanticSegmentationTarget(12) (score = 412)".
    """
    target = found.targets[0]
    if found.logits is None:
        score = "" if found.scores is None else f" (score = {float(found.scores[0]):.4g})"
        return f"Target: {describe_target(target)}{score}"
    logits = found.logits[0]
    names = class_names_of(model, len(logits), class_names)
    how = probability_of(model, len(logits), probability)
    values = how.of(logits)
    word = "p" if how.kind else "score"
    top = int(logits.argmax())

    def said(k: int) -> str:
        return f"{class_label(k, names)} ({word} = {float(values[k]):.3g})"

    if target is None:
        line = f"Predicted class: {said(top)}"
    elif callable(target):
        line = f"Target: {describe_target(target)} (score = {float(found.scores[0]):.4g}); the model's top class is " \
               f"{said(top)}"
    elif int(target) == top:
        line = f"Target class: {said(top)}, the model's top class"
    else:
        line = f"Target class: {said(int(target))}; the model's top class is {said(top)}"
    return line + (f"\n{how.assumed}" if how.assumed else "")
