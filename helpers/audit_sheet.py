"""The images to look at first: an audit's most suspicious rows, and a contact sheet of them.

``suspects(table)`` ranks an audit's rows (``helpers.audit``) in three groups, in this order:

1. **wrong predictions**, the most confident first;
2. **evidence outside the region**: maps whose share inside the image's region is below a uniform
   map's share there (below chance), the lowest ratio first;
3. **confident predictions with weak maps**: at least the median probability, with a peak below
   ``weak`` times the median peak of the table (the unstretched maps, so strengths compare), the
   weakest first.

``contact_sheet`` draws them, each map over its image and labelled with its numbers.

>>> from helpers.audit_sheet import contact_sheet, suspects
>>> suspects(table, n=8)[["image", "reason"]]                     # doctest: +SKIP
>>> contact_sheet(table, model, "my_images/", n=8)                 # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .audit_data import Source, scaling_for
from .audit_regions import Regions
from .cam import compute_cams
from .models import default_target_layers
from .viz import overlay

#: The groups of ``suspects``, in the order the sheet shows them.
REASONS = ("wrong prediction", "evidence outside the region", "confident, weak map")


def suspects(table: pd.DataFrame, n: int = 16, weak: float = 0.5) -> pd.DataFrame:
    """The ``n`` rows of ``table`` to look at first, with a ``reason`` (one of ``REASONS``) and the map's
    ``strength``: its peak over the median peak of the table's readable rows."""
    rows = table[table.error == ""].copy()
    if rows.empty:
        return rows.assign(reason=pd.Series(dtype=str), strength=pd.Series(dtype=float))
    median_peak = float(rows.peak_value.median())
    rows["strength"] = rows.peak_value / median_peak if median_peak > 0 else 0.0
    wrong = rows[rows.correct.isin([False])]                         # not <NA>: no label, no verdict
    wrong = wrong.sort_values("probability", ascending=False, kind="stable")
    rest = rows.drop(wrong.index)
    ratio = rest.region_share / rest.region_area
    outside = rest[ratio < 1].assign(ratio=ratio[ratio < 1]).sort_values("ratio", kind="stable").drop(columns="ratio")
    rest = rest.drop(outside.index)
    confident = rest[(rest.probability >= rows.probability.median()) & (rest.strength < weak)]
    confident = confident.sort_values("strength", kind="stable")
    chosen = pd.concat([part.assign(reason=reason) for part, reason in zip((wrong, outside, confident), REASONS)])
    return chosen.head(n)


def contact_sheet(table: pd.DataFrame, model: nn.Module, data: Any,
                  target_layers: Optional[Sequence[nn.Module]] = None, n: int = 16, regions: Any = None,
                  labels: Optional[Mapping[str, int]] = None, size: Optional[int] = None, method: str = "GradCAM",
                  columns: int = 4, weak: float = 0.5, target: object = None, show: Sequence[str] = ()):
    """A matplotlib figure of ``suspects(table, n)``: each image with its map (the class the table explained,
    recomputed here for these images only), its region's outline, and its numbers.

    ``data``, ``regions``, ``labels``, ``size`` and ``method`` as given to ``audit`` for this table;
    ``target`` too, where it was a function of the model's output (the table names only classes).
    ``show``: more of the table's columns to print in each caption (a group of your own, say).
    """
    import matplotlib.pyplot as plt

    chosen = suspects(table, n, weak)
    if chosen.empty:
        figure, ax = plt.subplots(figsize=(6, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, f"none of the {len(table)} images is suspicious: no wrong prediction, no map below chance "
                f"in its region, no confident prediction with a weak map", ha="center", va="center", wrap=True)
        return figure
    layers = default_target_layers(model) if target_layers is None else list(target_layers)
    scaling = scaling_for(model, size)
    source = Source(data, scaling, Regions.read(regions) if regions is not None else None, labels)
    images = source.images([source.position(image) for image in chosen.image])
    items = [images[i] for i in range(len(images))]
    columns = max(1, min(columns, len(items)))
    lines = max(1, math.ceil(len(items) / columns))
    figure, axes = plt.subplots(lines, columns, figsize=(3.3 * columns, 4.2 * lines + 0.4), squeeze=False,
                                layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, item, row in zip(axes.flat, items, chosen.itertuples()):
        if item.tensor is None:
            ax.set_title(f"{_short(row.image)}\ncannot be read now:\n{item.error[:60]}", fontsize=8)
            continue
        explained = target if target is not None else None if pd.isna(row.target) else int(row.target)
        cam, _ = compute_cams(model, layers, [explained], item.tensor[None], method=method)
        width, height = item.file_size
        ax.imshow(overlay(_for_eyes(item.tensor, scaling, isinstance(data, (str, os.PathLike))),
                          cam[0], alpha=0.5), extent=(0, width, height, 0))
        if item.mask is not None:
            ax.contour(np.linspace(0, width, item.mask.shape[1]), np.linspace(0, height, item.mask.shape[0]),
                       item.mask.astype(float), levels=[0.5], colors="white", linewidths=1)
        ax.set_title(_caption(row, show), fontsize=8, color="darkred" if row.reason == REASONS[0] else "black")
    counts = chosen.reason.value_counts()
    figure.suptitle(f"The {len(items)} images to look at first, of {len(table)}. "
                    + "; ".join(f"{reason}: {counts.get(reason, 0)}" for reason in REASONS), fontsize=10)
    return figure


def _short(image: str, length: int = 28) -> str:
    return image if len(image) <= length else "..." + image[-(length - 3):]


def _caption(row: Any, show: Sequence[str] = ()) -> str:
    """The numbers of one image: why it is here, prediction and label, the map's strength and share."""
    name = str(row.index) if row.image == str(row.index) else f"{row.index}: {_short(row.image)}"
    lines = [name + "".join(f", {getattr(row, column)}" for column in show), row.reason,
             f"predicted {row.predicted_name or row.predicted} ({row.probability:.0%})"]
    if not pd.isna(row.label):
        lines[-1] += f", label {row.label_name or row.label}"
    if pd.isna(row.target) or row.target != row.predicted:
        lines.append(f"map of {row.target_name or row.target}")
    strength = f"peak {row.peak_value:.3g} ({row.strength:.2f}x the median)"
    if not pd.isna(row.region_area):
        share = "no evidence" if pd.isna(row.region_share) else f"{row.region_share:.0%}"
        strength += f"\nin region {share} (chance {row.region_area:.0%})"
    lines.append(strength)
    return "\n".join(lines)


def _for_eyes(tensor: torch.Tensor, scaling: Any, known: bool) -> np.ndarray:
    """An input tensor ``[C, H, W]`` as RGB in [0, 1]: un-normalised when its normalisation is known (a
    folder's), else stretched per image."""
    pixels = tensor.detach().float().cpu().numpy().transpose(1, 2, 0)
    if known and pixels.shape[2] == len(scaling.mean):
        pixels = pixels * np.asarray(scaling.std) + np.asarray(scaling.mean)
    else:
        pixels = (pixels - pixels.min()) / max(float(pixels.max() - pixels.min()), 1e-7)
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return np.clip(pixels[:, :, :3], 0, 1).astype(np.float32)
