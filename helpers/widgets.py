"""An interactive GradCAM explorer for Jupyter: pick a class, a layer, a method, an image.

This module is the explorer's view: its controls, its picture, and the events that change
what is chosen (``explorer_state``); the maps come from ``explorer_graphs``.

>>> from helpers import explore                                          # doctest: +SKIP
>>> explore(model, default_target_layers(model), input_tensor, rgb_image)  # doctest: +SKIP

It answers as fast as you can click: the model runs once per image and layer, keeping the
layer's activations and the small part of the network after it (a *kept graph*, see
``explorer_graphs``). A new class then costs one gradient of one class score with respect to
those activations, a class seen before costs nothing but drawing. Every update is synchronous:
when a control's value has been set, the heatmap widget already holds the new picture.

Memory stays bounded however often a cell is run again: only the few most recently used
explorers (over all models) keep a graph, and the others make theirs again when next used;
an explorer holds its model weakly once its graph is freed, and keeps the last few uploads.
Bad input (an upload that is not an image, a layer that fails) shows a message in the widget;
the previous picture and choices stay, and no hook is ever left on the model.
"""

from __future__ import annotations

import functools
import html
import io
import warnings
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image as PILImage
from torch import nn

from .cam import METHODS, check_input, check_target_layers, shown_name
from .downloads import fetch
from .explorer_graphs import ExplorerMaps
from .explorer_state import TARGET, Message, class_from_text, starting_state, upload_to_image
from .images import load_image
from .viz import COLORMAPS, DEFAULT_CMAP, colormap_table, overlay


def percent(probability: float) -> str:
    """A probability as a novice reads it: a percentage, with as many digits as it needs.

    >>> [percent(p) for p in (0.8712, 0.0342, 0.000226, 0.00000004, 0.99996)]
    ['87%', '3.4%', '0.02%', 'under 0.01%', 'over 99.9%']
    """
    value = 100 * float(probability)
    if value >= 99.95:
        return "100%" if value >= 100 else "over 99.9%"
    if value >= 99.5:
        return f"{value:.1f}%"
    if value >= 10:
        return f"{value:.0f}%"
    if value >= 1:
        return f"{value:.1f}%"
    if value >= 0.01:
        return f"{value:.2f}%"
    return "0%" if value <= 0 else "under 0.01%"


def layer_labels(names: Sequence[str]) -> List[Tuple[str, str]]:
    """The Layer list's (label, name) pairs: the layers come from deep (a coarse map) to earlier ones
    (finer maps), and the labels say so.

    >>> layer_labels(["layer4", "layer3", "layer1"])
    [('layer4 (deepest: coarse)', 'layer4'), ('layer3 (earlier: finer)', 'layer3'), ('layer1 (earliest: finest)', 'layer1')]
    """
    words = ["deepest: coarse"] + ["earlier: finer"] * max(len(names) - 2, 0) + ["earliest: finest"]
    if len(names) == 1:
        words = ["the layer you gave"]
    return [(f"{name} ({word})", name) for name, word in zip(names, words)]


def colour_bar(cmap: str, width: int = 480) -> str:
    """HTML for a colour bar of ``cmap``: what the heatmap's colours mean, from none to the strongest."""
    table = colormap_table(cmap)
    stops = ", ".join("#%02x%02x%02x" % tuple(int(round(255 * c)) for c in table[i]) for i in range(0, 256, 32)) \
        + ", #%02x%02x%02x" % tuple(int(round(255 * c)) for c in table[255])
    return (f"<div class='lesson-colorbar' title='{html.escape(cmap)}' style='max-width:{width}px; "
            f"font-size:90%'><div class='lesson-colorbar-ramp' style='height:12px; border:1px solid #888; "
            f"background:linear-gradient(to right, {stops})'></div><div style='display:flex; "
            f"justify-content:space-between'><span>0: no evidence</span><span>1: the strongest in this "
            f"image</span></div></div>")


def shown_value(graph, class_id: int) -> str:
    """What the status line says of a class: its probability as a percentage ("probability 0.02%")
    where the model's scores are probabilities (``graph.kind``), else the graph's own words
    (``"score = 3.2"``, and the target's score)."""
    if class_id != TARGET and graph.kind:
        return f"probability {percent(graph.probabilities[class_id])}"
    return graph.value(class_id)


def encode_jpeg(picture: np.ndarray, quality: int = 90) -> bytes:
    """uint8 RGB ``[H, W, 3]`` to JPEG bytes (a few ms for 224 px, faster than PNG)."""
    buffer = io.BytesIO()
    PILImage.fromarray(picture).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


class Explorer:
    """The explorer's view: its widgets show ``self.state``, and their events change it.

    ``self.maps`` (``explorer_graphs.ExplorerMaps``) computes the picture. ``explore()`` builds one.
    """

    def __init__(self, model: nn.Module, target_layers: Sequence[nn.Module], input_tensor: torch.Tensor,
                 rgb_image: np.ndarray, class_id: Optional[int] = None, method: str = "GradCAM",
                 alpha: float = 0.5, cmap: str = DEFAULT_CMAP, image_name: Optional[str] = None,
                 class_names: Optional[Sequence[str]] = None, probability: object = "auto") -> None:
        import ipywidgets as widgets           # lazy on purpose: `from helpers import explore` stays light

        target = class_id if callable(class_id) else None        # a target: offered as the class TARGET
        class_id = TARGET if target is not None else class_id
        self.state = starting_state(model, target_layers, input_tensor, rgb_image, method, alpha, cmap, image_name,
                                    class_names, target, probability)
        self.maps = ExplorerMaps(model, self.state)
        self.model_name = getattr(model, "lesson_name", type(model).__name__)
        self._busy = False

        self.image_choice = widgets.Dropdown(description="Image")
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="Upload",
                                         tooltip="Upload a photo of your own (JPEG or PNG)",
                                         layout=widgets.Layout(width="auto"))
        self.class_choice = widgets.Dropdown(description="Class")
        self.search = widgets.Combobox(ensure_option=False, continuous_update=False,
                                       tooltip="Type a class name and press Enter")
        self.layer_choice = widgets.Dropdown(description="Layer")
        self.method_choice = widgets.Dropdown(options=list(METHODS), description="Method")
        self.alpha = widgets.FloatSlider(min=0.0, max=1.0, step=0.05, description="Opacity",
                                         continuous_update=True, readout_format=".2f")
        self.cmap_choice = widgets.Dropdown(options=list(COLORMAPS), description="Colours")
        self.status, self.message = widgets.HTML(), widgets.HTML()
        self.heatmap = widgets.Image(format="jpeg", layout=widgets.Layout(width="auto", max_width="480px"))
        self.colour_bar = widgets.HTML()
        self.widget = widgets.VBox([
            widgets.HBox([self.image_choice, self.upload]),
            widgets.HBox([self.class_choice, self.search]),
            widgets.HBox([self.layer_choice, self.method_choice]),
            widgets.HBox([self.alpha, self.cmap_choice]),
            self.status, self.message, self.heatmap, self.colour_bar,
        ])

        self._choose_class(keep=class_id)
        for control, name in ((self.class_choice, "class_id"), (self.layer_choice, "layer"),
                              (self.method_choice, "method"), (self.alpha, "alpha"), (self.cmap_choice, "cmap")):
            control.observe(functools.partial(self._on_change, name), names="value")
        self.image_choice.observe(self._on_image, names="value")
        self.search.observe(self._on_search, names="value")
        self.upload.observe(self._on_upload, names="value")

    # --- showing the state ------------------------------------------------------------------------

    def _show(self) -> None:
        """Every control set from the state (the events this fires are ignored: see ``_guarded``)."""
        state = self.state
        self.image_choice.options, self.image_choice.value = state.image_options, state.image
        if len(self.search.options) != len(state.names):            # the model's class names, once known
            self.search.options = [state.label(i) for i in range(len(state.names))]
            self.search.placeholder = f"search all {len(state.names)} classes"
        self.class_choice.options = [(state.label(i), i) for i in state.class_ids]
        self.class_choice.value = state.class_id
        self.layer_choice.options, self.layer_choice.value = layer_labels(list(state.layers)), state.layer
        self.method_choice.value, self.alpha.value, self.cmap_choice.value = state.method, state.alpha, state.cmap

    def _draw(self) -> None:
        state = self.state
        picture = overlay(state.images[state.image][1], self.maps.heatmap_for(state.class_id), alpha=state.alpha,
                          cmap=state.cmap)
        self.heatmap.value = encode_jpeg(picture)
        self.colour_bar.value = colour_bar(state.cmap)
        graph = self.maps.graph()
        best = int(graph.probabilities.argmax()) if len(graph.probabilities) else None
        top = f"top class: {html.escape(state.label(best))} ({shown_value(graph, best)}) &nbsp;·&nbsp; " \
            if best is not None else ""
        rows, columns = graph.activations.shape[-2:]
        self.status.value = (f"<b>{html.escape(state.label(state.class_id))}</b>: "
                             f"{shown_value(graph, state.class_id)} &nbsp;·&nbsp; {top}"
                             f"{html.escape(state.method)} at {html.escape(state.layer)} ({rows}×{columns} grid) "
                             f"of {html.escape(self.model_name)}")

    # --- events: each changes the state, or on failure keeps all of it as it was -------------------

    def _guarded(self, action: Callable[[], None]) -> None:
        if self._busy:
            return
        self._busy = True
        before = self.state.snapshot()
        try:
            action()
            self.message.value = ""
        except Exception as error:  # noqa: BLE001 - the widget must survive any failure
            self.state.restore(before)
            self.maps.forget_gone_images()
            try:
                self._show()
                self._draw()
            except Exception:  # noqa: BLE001
                pass
            text = str(error) if isinstance(error, Message) else f"{type(error).__name__}: {error}"
            self.message.value = (f"<span style='color:#b00020'>⚠ {html.escape(text)}</span><br>"
                                  f"The previous picture and choices are kept.")
        finally:
            self._busy = False

    def _on_change(self, name: str, change) -> None:
        self._guarded(lambda: (setattr(self.state, name, change["new"]), self._draw()))

    def _on_image(self, change) -> None:
        def action():
            name = self.state.image = change["new"]
            if name not in self.state.images:
                self.state.images[name] = load_image(fetch(name), model=self.maps.model())
            self._choose_class()

        self._guarded(action)

    def _on_search(self, change) -> None:
        if not change["new"].strip():
            return

        def action():
            class_id = class_from_text(change["new"], self.state.names)
            if class_id not in self.state.searched:
                self.state.searched.append(class_id)
            self._choose_class(keep=class_id)

        self._guarded(action)
        # The class list shows what the text was taken to mean; an empty box lets the same entry
        # be chosen again (a value that does not change fires no event).
        self.search.value = ""

    def _on_upload(self, change) -> None:
        files = change["new"]
        if not files:
            return
        upload = files[-1] if isinstance(files, (list, tuple)) else list(files.values())[-1]
        name = f"upload {len(self.state.uploads) + 1}: {upload['name']}"   # a new name each time: caches use it

        def action():
            self.state.add_upload(name, upload_to_image(upload["name"], upload["content"], self.maps.model()))
            self.maps.forget_gone_images()
            self._choose_class()

        self._guarded(action)
        self.upload.value = ()                   # the picture is kept in the state: drop the file's bytes

    def _choose_class(self, keep: Optional[int] = None) -> None:
        """The class list for the chosen image (keeping the class shown), shown and drawn."""
        self.state.set_class_options(self.maps.graph().probabilities, keep=keep, model=self.maps.model())
        self._show()
        self._draw()


def explore(model: nn.Module, target_layers: Sequence[nn.Module], input_tensor: torch.Tensor,
            rgb_image: np.ndarray, class_id: Optional[int] = None, method: str = "GradCAM",
            alpha: float = 0.5, cmap: str = DEFAULT_CMAP, image_name: Optional[str] = None,
            class_names: Optional[Sequence[str]] = None, probability: object = "auto"):
    """An interactive GradCAM explorer: returns an ipywidgets widget to display.

    The arguments are the starting state; the widget's own controls change the class (this
    image's top-5, the lesson's classes, or any class found by search), the layer, the method
    (GradCAM, GradCAM++, HiResCAM, LayerCAM, EigenCAM), the opacity, the colours, and the image
    (the lesson's images or your own upload). ``image_name`` labels the first image; by default
    it is the lesson image's file name when the image is one of them, else "(your image)".
    ``class_id`` may also be a target, a function of the model's output for the image that gives
    one number (``helpers.targets``; pytorch-grad-cam's targets work): it is offered first in the
    class list, and alone for a model whose output holds no class scores (a segmentation, a detector).
    ``class_names``: your model's class names, one per class; by default Hugging Face's
    ``config.id2label``, ImageNet's for a model of 1000 classes, else "class 0", "class 1"...
    ``probability``: how scores become the p shown ("softmax", "sigmoid", None; "auto": from the model). The explorer shows one image and one layer at a
    time: several target layers are all offered in its Layer list, starting with the first.
    Every explorer keeps working; only the few most recently used hold memory for instant answers.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r} for the explorer; choose one of {', '.join(METHODS)}")
    if cmap not in COLORMAPS:
        raise ValueError(f"unknown colour map {cmap!r} for the explorer; choose one of {', '.join(COLORMAPS)}")
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, (int, float, np.integer, np.floating)) \
            or not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha (the heatmap's opacity) must be a number from 0 to 1, got {alpha!r}")
    alpha = float(alpha)
    target_layers = check_target_layers(model, target_layers)     # a bare layer is taken as [layer]
    check_one_image(input_tensor)
    if len(target_layers) > 1:
        names = [shown_name(model, layer) for layer in target_layers]
        warnings.warn(f"the explorer shows one layer at a time: it starts at {names[0]}, and "
                      f"{', '.join(names[1:])} {'is' if len(names) == 2 else 'are'} in its Layer list (gradcam with "
                      f"several layers averages their maps)", stacklevel=2)
    explorer = Explorer(model, list(target_layers), input_tensor, rgb_image, class_id, method, alpha, cmap, image_name,
                        class_names, probability)
    explorer.widget.explorer = explorer          # for tests and the curious
    return explorer.widget


def check_one_image(input_tensor: object) -> None:
    """A clear error unless ``input_tensor`` holds one image: the explorer shows one at a time."""
    check_input(input_tensor)
    if input_tensor.shape[0] != 1:
        raise ValueError(f"the explorer shows one image at a time, but input_tensor holds {input_tensor.shape[0]}: "
                         f"pass one, for example input_tensor[i:i + 1] with its rgb_image (the Image list offers "
                         f"more images, and uploads)")
