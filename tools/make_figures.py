#!/usr/bin/env python3
"""Draw the lesson's static figures into episodes/fig/ (run again after changing them).

    python tools/make_figures.py

The figure names the model that made it, as every figure of the lesson does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpers import class_name, default_target_layers, fetch, load_image, load_model, overlay  # noqa: E402
from helpers.viz import DEFAULT_CMAP  # noqa: E402
from helpers.cam import forward_with_activations, gradcam_map, maps_to_image  # noqa: E402


def gradcam_steps(path: Path) -> None:
    model = load_model()
    input_tensor, rgb_image = load_image(fetch("both.png"))
    logits, (activations,) = forward_with_activations(model, default_target_layers(model), input_tensor, detach=True)
    class_id = int(logits.argmax())
    gradients, = torch.autograd.grad(logits[0, class_id], activations)
    small = torch.relu(gradcam_map(activations.detach(), gradients))[0]
    heatmap = maps_to_image([small[None]], rgb_image.shape[:2])[0].numpy()
    panels = [(rgb_image, "1. the image"),
              (small.numpy(), f"2. GradCAM at the last\nconvolutional layer ({small.shape[0]}×{small.shape[1]})"),
              (heatmap, "3. scaled up to the image"),
              (overlay(rgb_image, heatmap), f"4. laid over the photo:\n{class_name(class_id)}")]
    figure, axes = plt.subplots(1, 4, figsize=(13.5, 3.8), layout="constrained")
    for axis, (picture, title) in zip(axes, panels):
        axis.imshow(picture, cmap=DEFAULT_CMAP if picture.ndim == 2 else None, interpolation="nearest")
        axis.set_title(title, fontsize=10)
        axis.axis("off")
    scale = figure.colorbar(plt.cm.ScalarMappable(cmap=DEFAULT_CMAP), ax=list(axes), fraction=0.015, pad=0.01,
                            ticks=[0, 1])
    scale.ax.set_yticklabels(["none", "strongest"], fontsize=8)
    figure.supxlabel(f"made with {model.lesson_name}; colours: {DEFAULT_CMAP} (bright = strong evidence)",
                     fontsize=8, x=0.99, ha="right")
    figure.savefig(path, dpi=80)
    print(f"wrote {path}")


#: The boxes episode 4 uses, in pixels of the 224 x 224 image: (first row, last row + 1, first column, last column + 1).
BOXES = {"dog": (13, 130, 76, 166), "cat": (130, 224, 45, 202)}


def boxes(path: Path) -> None:
    """The lesson's photo with the two boxes of episode 4, labelled with their rows and columns."""
    from matplotlib.patches import Rectangle

    _, rgb_image = load_image(fetch("both.png"))
    figure, axis = plt.subplots(figsize=(4.6, 4.6), layout="constrained")
    axis.imshow(rgb_image)
    for (name, (top, bottom, left, right)), colour in zip(BOXES.items(), ("#56b4e9", "#e69f00")):
        axis.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False,
                                 edgecolor=colour, linewidth=2.5))
        axis.text(left + 2, top + 10, f"{name}: rows {top}:{bottom}, columns {left}:{right}", fontsize=8,
                  color="black", bbox=dict(facecolor=colour, alpha=0.9, pad=1.5, edgecolor="none"))
    axis.set_xticks([0, 56, 112, 168, 223])
    axis.set_yticks([0, 56, 112, 168, 223])
    axis.tick_params(labelsize=7)
    figure.savefig(path, dpi=90)
    print(f"wrote {path}")


if __name__ == "__main__":
    gradcam_steps(ROOT / "episodes" / "fig" / "gradcam-steps.png")
    boxes(ROOT / "episodes" / "fig" / "boxes.png")
