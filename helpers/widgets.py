"""An interactive GradCAM explorer for Jupyter: pick a class, a layer, a method, an image.

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

import html
import io
import weakref
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image as PILImage
from torch import nn

from .cam import GRADIENT_FREE, METHODS, check_target_layers, layer_name, maps_to_image
from .downloads import cache_dir, fetch, lesson_images
from .explorer_graphs import KEPT, KeptGraph, grad_mode, run_forward
from .images import load_image, target_size
from .labels import LABELS, LESSON_CLASSES, check_class_id, class_name, find_classes
from .models import layer_choices
from .viz import COLORMAPS, DEFAULT_CMAP, overlay

#: How many low-resolution maps an explorer remembers.
MAP_CACHE_SIZE = 256
#: How many of your uploads an explorer keeps (the oldest leaves the image list).
MAX_UPLOADS = 3
YOUR_IMAGE = "(your image)"


class Message(Exception):
    """A problem explained for people: the widget shows its text as it is."""


def encode_jpeg(picture: np.ndarray, quality: int = 90) -> bytes:
    """uint8 RGB ``[H, W, 3]`` to JPEG bytes (a few ms for 224 px, faster than PNG)."""
    buffer = io.BytesIO()
    PILImage.fromarray(picture).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def lesson_image_name(rgb_image: np.ndarray, model: Optional[nn.Module] = None) -> Optional[str]:
    """The name of the lesson image (already downloaded) that ``rgb_image`` was loaded from, if any."""
    height, width = np.shape(rgb_image)[:2]
    for name in lesson_images():
        path = cache_dir() / name
        try:
            with PILImage.open(path) as image:
                if width != height and (width, height) not in (target_size(*image.size),
                                                               target_size(*image.size[::-1])):
                    continue
            if any(np.array_equal(load_image(path, model=m)[1], rgb_image) for m in dict.fromkeys([None, model])):
                return name
        except (OSError, ValueError):
            continue
    return None


def upload_to_image(name: str, content: bytes, model: Optional[nn.Module] = None) -> Tuple[torch.Tensor, np.ndarray]:
    """``load_image`` for an uploaded file, with a message for people when it is not an image."""
    try:
        return load_image(bytes(content), model=model)
    except (OSError, ValueError) as error:
        reason = str(error).replace(f"the {len(content)} image bytes", name)
        if "not an image" in reason or "empty" in reason:
            raise Message(f"That file is not an image we can open ({name}). Try a JPEG or PNG.") from None
        raise Message(f"We could not use {name}: {reason}") from None


def layer_options(model: nn.Module, target_layers: Sequence[nn.Module]) -> Dict[str, "weakref.ReferenceType"]:
    """The explorer's layer list, by name: ``layer_choices``, with the starting layer first if it is not there."""
    try:
        options = dict(layer_choices(model))
    except ValueError:
        options = {}
    if not any(layer is target_layers[0] for layer in options.values()):
        options = {layer_name(model, target_layers[0]): target_layers[0], **options}
    return {name: weakref.ref(layer) for name, layer in options.items()}


def class_from_text(text: str, num_classes: int = len(LABELS)) -> int:
    """The class that the search text names: "340 · zebra", "340", or the first name containing it.

    Only classes the model has (``num_classes``, from its logits) are found; else a ``Message``.
    """
    text = text.strip()
    number = text.split("·", 1)[0].strip()
    if number.isascii() and number.isdigit():            # "²".isdigit() is True, but int("²") fails
        if int(number) >= num_classes:
            raise Message(f"This model has {num_classes} classes (0 to {num_classes - 1}); "
                          f"there is no class {int(number)}.")
        return int(number)
    matches = find_classes(text)
    if not matches:
        raise Message(f"No class name contains {text!r}; try a shorter piece, such as 'dog'.")
    mine = [c for c in matches if c < num_classes]
    if not mine:
        raise Message(f"{class_name(matches[0])} is not one of this model's classes: it has "
                      f"{num_classes} (0 to {num_classes - 1}).")
    return mine[0]


class Explorer:
    """The explorer's state and logic; ``explore()`` builds one and returns its widget."""

    def __init__(self, model: nn.Module, target_layers: Sequence[nn.Module], input_tensor: torch.Tensor,
                 rgb_image: np.ndarray, class_id: Optional[int] = None, method: str = "GradCAM",
                 alpha: float = 0.5, cmap: str = DEFAULT_CMAP, image_name: Optional[str] = None) -> None:
        import ipywidgets as widgets

        self._model_ref = weakref.ref(model)
        self._model: Optional[nn.Module] = model          # held strongly only while the graph is kept
        self.model_name = getattr(model, "lesson_name", type(model).__name__)
        self.layers: Dict[str, "weakref.ReferenceType[nn.Module]"] = layer_options(model, target_layers)
        first = image_name or lesson_image_name(rgb_image, model) or YOUR_IMAGE
        with grad_mode():                                  # an inference tensor becomes a normal one
            self.images: Dict[str, Tuple[torch.Tensor, np.ndarray]] = {first: (input_tensor.clone(), rgb_image)}
        self._graph: Optional[KeptGraph] = None
        self._graph_key: Optional[Tuple[str, str]] = None
        self._maps: "OrderedDict[tuple, torch.Tensor]" = OrderedDict()
        self._busy = False
        self._uploads: List[str] = []
        self._searched: List[int] = []           # classes added with the search box, kept across images

        first_layer = next(name for name, ref in self.layers.items() if ref() is target_layers[0])
        self.image_choice = widgets.Dropdown(options=list(dict.fromkeys([first] + lesson_images())), value=first,
                                             description="Image")
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="Upload",
                                         tooltip="Upload a photo of your own (JPEG or PNG)",
                                         layout=widgets.Layout(width="auto"))
        self.class_choice = widgets.Dropdown(description="Class")
        self.search = widgets.Combobox(placeholder="search all 1000 classes", ensure_option=False,
                                       continuous_update=False, tooltip="Type a class name and press Enter",
                                       options=[class_name(i) for i in range(len(LABELS))])
        self.layer_choice = widgets.Dropdown(options=list(self.layers), value=first_layer, description="Layer")
        self.method_choice = widgets.Dropdown(options=list(METHODS), value=method, description="Method")
        self.alpha = widgets.FloatSlider(value=alpha, min=0.0, max=1.0, step=0.05, description="Opacity",
                                         continuous_update=True, readout_format=".2f")
        self.cmap_choice = widgets.Dropdown(options=list(COLORMAPS), value=cmap, description="Colours")
        self.status, self.message = widgets.HTML(), widgets.HTML()
        self.heatmap = widgets.Image(format="jpeg", layout=widgets.Layout(width="auto", max_width="480px"))
        self.widget = widgets.VBox([
            widgets.HBox([self.image_choice, self.upload]),
            widgets.HBox([self.class_choice, self.search]),
            widgets.HBox([self.layer_choice, self.method_choice]),
            widgets.HBox([self.alpha, self.cmap_choice]),
            self.status, self.message, self.heatmap,
        ])

        if class_id is not None:
            num_classes = len(self.graph().probabilities)       # the model's own class count
            try:
                class_id = check_class_id(class_id, num_classes)
            except ValueError as error:
                raise ValueError(f"{error}: this model has {num_classes} classes") from None
        self._set_class_options(keep=class_id)
        self._draw()
        for control in (self.class_choice, self.layer_choice, self.method_choice, self.alpha, self.cmap_choice):
            control.observe(self._on_change, names="value")
        self.image_choice.observe(self._on_image, names="value")
        self.search.observe(self._on_search, names="value")
        self.upload.observe(self._on_upload, names="value")

    # --- the computation ---------------------------------------------------------------------

    def has_graph(self) -> bool:
        return self._graph is not None

    def drop_graph(self) -> None:
        """Free the kept graph (and the strong hold on the model); the next use makes it again."""
        self._graph, self._graph_key, self._model = None, None, None

    def graph(self) -> KeptGraph:
        """The kept graph of the current image and layer, made with one forward pass if needed."""
        key = (self.image_choice.value, self.layer_choice.value)
        if self._graph is None or self._graph_key != key:
            model, layer = self.model(), self.layers[key[1]]()
            if layer is None:
                raise Message(f"The layer {key[1]} is no longer part of the model; choose another.")
            self.drop_graph()                    # free the previous graph before making a new one
            self._graph, self._graph_key, self._model = run_forward(model, layer, self.images[key[0]][0]), key, model
        KEPT.used(self)
        return self._graph

    def model(self) -> nn.Module:
        model = self._model_ref()
        if model is None:
            raise Message("This explorer's model is no longer in memory: no variable holds it any more "
                          "(a newer model took its name?). Run the explorer's cell again.")
        return model

    def heatmap_for(self, class_id: int) -> np.ndarray:
        """The current method's map for ``class_id`` at the image's size, float32 in [0, 1]."""
        return self._map(class_id).numpy()

    def _map(self, class_id: int) -> torch.Tensor:
        graph, (image, layer) = self.graph(), (self.image_choice.value, self.layer_choice.value)
        method = self.method_choice.value
        key = (image, layer, method, None if method in GRADIENT_FREE else class_id)
        small = self._maps.get(key)
        if small is None:
            gradients = None if method in GRADIENT_FREE else graph.gradients_for(class_id)
            with torch.inference_mode(False), torch.no_grad():
                small = METHODS[method](graph.activations.detach(), gradients)
            self._maps[key] = small
            while len(self._maps) > MAP_CACHE_SIZE:
                self._maps.popitem(last=False)
        self._maps.move_to_end(key)
        with torch.inference_mode(False), torch.no_grad():
            return maps_to_image([small], tuple(self.images[image][0].shape[-2:]))[0]

    # --- drawing -----------------------------------------------------------------------------

    def _draw(self) -> None:
        class_id = self.class_choice.value
        _, rgb_image = self.images[self.image_choice.value]
        picture = overlay(rgb_image, self.heatmap_for(class_id), alpha=self.alpha.value, cmap=self.cmap_choice.value)
        self.heatmap.value = encode_jpeg(picture)
        probabilities = self.graph().probabilities
        top = int(probabilities.argmax())
        self.status.value = (f"<b>{html.escape(class_name(class_id))}</b>: p = {float(probabilities[class_id]):.3g}"
                             f" &nbsp;·&nbsp; top class: {html.escape(class_name(top))} "
                             f"(p = {float(probabilities[top]):.3g}) &nbsp;·&nbsp; "
                             f"{html.escape(self.method_choice.value)} at {html.escape(self.layer_choice.value)}"
                             f" of {html.escape(self.model_name)}")

    def _set_class_options(self, keep: Optional[int] = None) -> None:
        """Top-5 of this image first, then the lesson's classes, then any found by search.

        The class shown stays selected (``keep``, else the current one, else the top class).
        """
        probabilities = self.graph().probabilities
        top5 = [int(i) for i in torch.topk(probabilities, min(5, len(probabilities))).indices]
        wanted = keep if keep is not None else self.class_choice.value
        wanted = top5[0] if wanted is None else wanted
        lesson = [c for c in LESSON_CLASSES if c < len(probabilities)]     # a model of your own may have fewer
        ids = list(dict.fromkeys(top5 + lesson + self._searched + [wanted]))
        self.class_choice.options = [(class_name(i), i) for i in ids]
        self.class_choice.value = wanted

    # --- events: each one keeps the previous state when it fails ------------------------------

    def _guarded(self, action, undo) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            action()
            self.message.value = ""
        except Exception as error:  # noqa: BLE001 - the widget must survive any failure
            try:
                undo()
                self._draw()
            except Exception:  # noqa: BLE001
                pass
            text = str(error) if isinstance(error, Message) else f"{type(error).__name__}: {error}"
            self.message.value = (f"<span style='color:#b00020'>⚠ {html.escape(text)}</span><br>"
                                  f"The previous picture and choices are kept.")
        finally:
            self._busy = False

    def _on_change(self, change) -> None:
        self._guarded(self._draw, lambda: setattr(change["owner"], "value", change["old"]))

    def _on_image(self, change) -> None:
        def action():
            name = change["new"]
            if name not in self.images:
                self.images[name] = load_image(fetch(name), model=self.model())
            self._set_class_options()
            self._draw()

        self._guarded(action, lambda: setattr(self.image_choice, "value", change["old"]))

    def _on_search(self, change) -> None:
        if not change["new"].strip():
            return
        previous = self.class_choice.value

        def action():
            class_id = class_from_text(change["new"], len(self.graph().probabilities))
            if class_id not in self._searched:
                self._searched.append(class_id)
            self._set_class_options(keep=class_id)
            self._draw()

        def undo():
            self._set_class_options(keep=previous)

        self._guarded(action, undo)
        # The class list shows what the text was taken to mean; an empty box lets the same entry
        # be chosen again (a value that does not change fires no event).
        self.search.value = ""

    def _on_upload(self, change) -> None:
        files = change["new"]
        if not files:
            return
        upload = files[-1] if isinstance(files, (list, tuple)) else list(files.values())[-1]
        name = f"upload {len(self._uploads) + 1}: {upload['name']}"   # a new name each time: caches use it
        previous_options, previous_image = list(self.image_choice.options), self.image_choice.value

        def action():
            self.images[name] = upload_to_image(upload["name"], upload["content"], self.model())
            self.image_choice.options = previous_options + [name]
            self.image_choice.value = name
            self._set_class_options()
            self._draw()
            self._uploads.append(name)
            self._forget_old_uploads()

        def undo():
            self.images.pop(name, None)
            self.image_choice.options = previous_options
            self.image_choice.value = previous_image

        self._guarded(action, undo)
        self.upload.value = ()                   # the picture is kept in self.images: drop the file's bytes

    def _forget_old_uploads(self) -> None:
        kept = [u for u in self._uploads if u in self.images][-MAX_UPLOADS:]
        for old in [u for u in self._uploads if u in self.images and u not in kept]:
            self.images.pop(old)
            self._maps = OrderedDict((k, v) for k, v in self._maps.items() if k[0] != old)
            current = self.image_choice.value     # a Dropdown given new options picks its first one
            self.image_choice.options = [o for o in self.image_choice.options if o != old]
            self.image_choice.value = current


def explore(model: nn.Module, target_layers: Sequence[nn.Module], input_tensor: torch.Tensor,
            rgb_image: np.ndarray, class_id: Optional[int] = None, method: str = "GradCAM",
            alpha: float = 0.5, cmap: str = DEFAULT_CMAP, image_name: Optional[str] = None):
    """An interactive GradCAM explorer: returns an ipywidgets widget to display.

    The arguments are the starting state; the widget's own controls change the class (this
    image's top-5, the lesson's classes, or any class found by search), the layer, the method
    (GradCAM, GradCAM++, HiResCAM, LayerCAM, EigenCAM), the opacity, the colours, and the image
    (the lesson's images or your own upload). ``image_name`` labels the first image; by default
    it is the lesson image's file name when the image is one of them, else "(your image)".
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
    explorer = Explorer(model, list(target_layers), input_tensor, rgb_image, class_id, method, alpha, cmap, image_name)
    explorer.widget.explorer = explorer          # for tests and the curious
    return explorer.widget
