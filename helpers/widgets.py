"""An interactive GradCAM explorer for Jupyter: pick a class, a layer, a method, an image.

>>> from helpers import explore                                          # doctest: +SKIP
>>> explore(model, default_target_layers(model), input_tensor, rgb_image)  # doctest: +SKIP

It answers as fast as you can click: the model runs once per image and layer, keeping the
layer's activations and the small part of the network after it. A new class then costs one
gradient of one class score with respect to those activations (``torch.autograd.grad``), a
class seen before costs nothing but drawing. Every update is synchronous: when a control's
value has been set, the heatmap widget already holds the new picture.

Bad input (an upload that is not an image, a layer that fails) shows a message in the widget;
the previous picture and choices stay. A new explorer on the same model releases the previous
one, so memory does not pile up, and no hook is ever left on the model.
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

from .cam import GRADIENT_FREE, METHODS, class_gradients, forward_with_activations, maps_to_image
from .downloads import fetch, lesson_images
from .images import load_image
from .labels import LABELS, LESSON_CLASSES, check_class_id, class_name, find_classes
from .models import layer_choices
from .viz import COLORMAPS, overlay

#: Explorers by id(model): a new explorer on the same model releases the previous one.
_LIVE: Dict[int, "weakref.ReferenceType[Explorer]"] = {}
#: How many low-resolution maps an explorer remembers.
MAP_CACHE_SIZE = 256
YOUR_IMAGE = "(your image)"


def encode_jpeg(picture: np.ndarray, quality: int = 90) -> bytes:
    """uint8 RGB ``[H, W, 3]`` to JPEG bytes (a few ms for 224 px, faster than PNG)."""
    buffer = io.BytesIO()
    PILImage.fromarray(picture).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


class Explorer:
    """The explorer's state and logic; ``explore()`` builds one and returns its widget."""

    def __init__(self, model: nn.Module, target_layers: Sequence[nn.Module], input_tensor: torch.Tensor,
                 rgb_image: np.ndarray, class_id: Optional[int] = None, method: str = "GradCAM",
                 alpha: float = 0.5, cmap: str = "jet") -> None:
        import ipywidgets as widgets

        self.model = model
        self.layers: Dict[str, nn.Module] = self._layer_options(model, target_layers)
        self.images: Dict[str, Tuple[torch.Tensor, np.ndarray]] = {YOUR_IMAGE: (input_tensor, rgb_image)}
        self._forward: Optional[Tuple[str, str, torch.Tensor, torch.Tensor, torch.Tensor]] = None
        self._gradients: "OrderedDict[int, torch.Tensor]" = OrderedDict()
        self._maps: "OrderedDict[tuple, torch.Tensor]" = OrderedDict()
        self._busy = False
        self._uploads = 0
        self._searched: List[int] = []           # classes added with the search box, kept across images
        self.released = False

        first_layer = next(name for name, layer in self.layers.items() if layer is target_layers[0])
        self.image_choice = widgets.Dropdown(options=[YOUR_IMAGE] + lesson_images(), value=YOUR_IMAGE,
                                             description="Image")
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="Your own photo")
        self.class_choice = widgets.Dropdown(description="Class")
        self.search = widgets.Combobox(placeholder="search all 1000 classes", ensure_option=True,
                                       options=[class_name(i) for i in range(len(LABELS))])
        self.layer_choice = widgets.Dropdown(options=list(self.layers), value=first_layer, description="Layer")
        self.method_choice = widgets.Dropdown(options=list(METHODS), value=method, description="Method")
        self.alpha = widgets.FloatSlider(value=alpha, min=0.0, max=1.0, step=0.05, description="Opacity",
                                         continuous_update=True, readout_format=".2f")
        self.cmap_choice = widgets.Dropdown(options=list(COLORMAPS), value=cmap, description="Colours")
        self.status = widgets.HTML()
        self.message = widgets.HTML()
        self.heatmap = widgets.Image(format="jpeg", layout=widgets.Layout(width="auto", max_width="480px"))
        self.widget = widgets.VBox([
            widgets.HBox([self.image_choice, self.upload]),
            widgets.HBox([self.class_choice, self.search]),
            widgets.HBox([self.layer_choice, self.method_choice]),
            widgets.HBox([self.alpha, self.cmap_choice]),
            self.status, self.message, self.heatmap,
        ])

        self._run_forward()
        self._set_class_options(keep=None if class_id is None else check_class_id(class_id))
        self._draw()
        for control in (self.class_choice, self.layer_choice, self.method_choice, self.alpha, self.cmap_choice):
            control.observe(self._on_change, names="value")
        self.image_choice.observe(self._on_image, names="value")
        self.search.observe(self._on_search, names="value")
        self.upload.observe(self._on_upload, names="value")

    # --- the computation ---------------------------------------------------------------------

    @staticmethod
    def _layer_options(model: nn.Module, target_layers: Sequence[nn.Module]) -> Dict[str, nn.Module]:
        try:
            options = dict(layer_choices(model))
        except ValueError:
            options = {}
        if not any(layer is target_layers[0] for layer in options.values()):
            from .cam import layer_name

            options = {layer_name(model, target_layers[0]): target_layers[0], **options}
        return options

    def _run_forward(self) -> None:
        """One forward pass for the current image and layer; keeps activations and logits."""
        key = (self.image_choice.value, self.layer_choice.value)
        if self._forward is not None and self._forward[:2] == key:
            return
        input_tensor, _ = self.images[key[0]]
        self._forward = None                 # free the previous graph before making a new one
        self._gradients.clear()
        logits, (activations,) = forward_with_activations(self.model, [self.layers[key[1]]], input_tensor,
                                                          detach=True)
        probabilities = torch.softmax(logits.detach()[0], dim=0)
        self._forward = (key[0], key[1], logits, activations, probabilities)

    def heatmap_for(self, class_id: int) -> np.ndarray:
        """The current method's map for ``class_id`` at the image's size, float32 in [0, 1]."""
        return self._map(class_id).numpy()

    def _map(self, class_id: int) -> torch.Tensor:
        image, layer, logits, activations, _ = self._forward
        method = self.method_choice.value
        key = (image, layer, method, None if method in GRADIENT_FREE else class_id)
        small = self._maps.get(key)
        if small is None:
            gradients = None
            if method not in GRADIENT_FREE:
                gradients = self._gradients.get(class_id)
                if gradients is None:
                    gradients = class_gradients(logits, [activations], [class_id], keep_graph=True)[0]
                    self._gradients[class_id] = gradients
            with torch.no_grad():
                small = METHODS[method](activations.detach(), gradients)
            self._maps[key] = small
            while len(self._maps) > MAP_CACHE_SIZE:
                self._maps.popitem(last=False)
        else:
            self._maps.move_to_end(key)
        size = tuple(self.images[image][0].shape[-2:])
        return maps_to_image([small], size)[0]

    # --- drawing -----------------------------------------------------------------------------

    def _draw(self) -> None:
        class_id = self.class_choice.value
        _, rgb_image = self.images[self.image_choice.value]
        picture = overlay(rgb_image, self.heatmap_for(class_id), alpha=self.alpha.value, cmap=self.cmap_choice.value)
        self.heatmap.value = encode_jpeg(picture)
        probabilities = self._forward[4]
        top = int(probabilities.argmax())
        self.status.value = (f"<b>{html.escape(class_name(class_id))}</b>: p = {float(probabilities[class_id]):.3g}"
                             f" &nbsp;·&nbsp; top class: {html.escape(class_name(top))} "
                             f"(p = {float(probabilities[top]):.3g}) &nbsp;·&nbsp; "
                             f"{html.escape(self.method_choice.value)} at {html.escape(self.layer_choice.value)}"
                             f" of {html.escape(getattr(self.model, 'lesson_name', type(self.model).__name__))}")

    def _set_class_options(self, keep: Optional[int] = None) -> None:
        """Top-5 of this image first, then the lesson's classes, then any found by search.

        The class shown stays selected (``keep``, else the current one, else the top class).
        """
        probabilities = self._forward[4]
        top5 = [int(i) for i in torch.topk(probabilities, 5).indices]
        wanted = keep if keep is not None else self.class_choice.value
        wanted = top5[0] if wanted is None else wanted
        ids = list(dict.fromkeys(top5 + list(LESSON_CLASSES) + self._searched + [wanted]))
        self.class_choice.options = [(class_name(i), i) for i in ids]
        self.class_choice.value = wanted

    # --- events: each one keeps the previous state when it fails ------------------------------

    def _guarded(self, action, undo) -> None:
        if self._busy or self.released:
            return
        self._busy = True
        try:
            action()
            self.message.value = ""
        except Exception as error:  # noqa: BLE001 - the widget must survive any failure
            try:
                undo()
                self._run_forward()
                self._draw()
            except Exception:  # noqa: BLE001
                pass
            self.message.value = (f"<span style='color:#b00020'>⚠ {html.escape(type(error).__name__)}: "
                                  f"{html.escape(str(error))}</span><br>The previous picture and choices are kept.")
        finally:
            self._busy = False

    def _on_change(self, change) -> None:
        def action():
            self._run_forward()
            self._draw()

        self._guarded(action, lambda: setattr(change["owner"], "value", change["old"]))

    def _on_image(self, change) -> None:
        def action():
            name = change["new"]
            if name not in self.images:
                self.images[name] = load_image(fetch(name))
            self._run_forward()
            self._set_class_options()
            self._draw()

        self._guarded(action, lambda: setattr(self.image_choice, "value", change["old"]))

    def _on_search(self, change) -> None:
        text = change["new"]
        if not text:
            return
        try:
            class_id = int(text.split(" · ", 1)[0])
        except ValueError:
            matches = find_classes(text)
            if len(matches) != 1:
                return
            class_id = matches[0]

        def action():
            if class_id not in self._searched:
                self._searched.append(class_id)
            self._run_forward()
            self._set_class_options(keep=class_id)
            self._draw()

        previous = self.class_choice.value
        self._guarded(action, lambda: self._set_class_options(keep=previous))

    def _on_upload(self, change) -> None:
        files = change["new"]
        if not files:
            return
        upload = files[-1] if isinstance(files, (list, tuple)) else list(files.values())[-1]
        self._uploads += 1                       # a new name each time: the caches are keyed by it
        name = f"upload {self._uploads}: {upload['name']}"
        previous_options, previous_image = list(self.image_choice.options), self.image_choice.value

        def action():
            self.images[name] = load_image(bytes(upload["content"]))
            self.image_choice.options = [o for o in previous_options if o != name] + [name]
            self.image_choice.value = name
            self._run_forward()
            self._set_class_options()
            self._draw()

        def undo():
            self.images.pop(name, None)
            self.image_choice.options = previous_options
            self.image_choice.value = previous_image

        self._guarded(action, undo)

    def release(self) -> None:
        """Free the kept graph and caches; the widget says it was replaced."""
        self._forward = None
        self._gradients.clear()
        self._maps.clear()
        self.images = {}
        self.released = True
        self.message.value = "This explorer was replaced by a newer one on the same model: use the newest."


def explore(model: nn.Module, target_layers: Sequence[nn.Module], input_tensor: torch.Tensor,
            rgb_image: np.ndarray, class_id: Optional[int] = None, method: str = "GradCAM",
            alpha: float = 0.5, cmap: str = "jet"):
    """An interactive GradCAM explorer: returns an ipywidgets widget to display.

    The arguments are the starting state; the widget's own controls change the class (this
    image's top-5, the lesson's classes, or any class found by search), the layer, the method
    (GradCAM, GradCAM++, HiResCAM, LayerCAM, EigenCAM), the opacity, the colours, and the image
    (the lesson's images or your own upload).
    """
    # Build the new explorer first: if an argument is bad, the previous one keeps working.
    explorer = Explorer(model, list(target_layers), input_tensor, rgb_image, class_id, method, alpha, cmap)
    previous = _LIVE.get(id(model))
    if previous is not None and previous() is not None:
        previous().release()
    _LIVE[id(model)] = weakref.ref(explorer)
    explorer.widget.explorer = explorer          # for tests and the curious
    return explorer.widget
