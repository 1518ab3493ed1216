"""What an explorer shows: the chosen image, class, layer, method, opacity and colours.

The explorer comes in three parts, which ``widgets.explore`` puts together:

- the state (this module): what is chosen and what there is to choose from; no widgets, no model run;
- the computation (``explorer_graphs``): the kept graphs, and the maps made from them;
- the view (``widgets``): the controls and the picture, and the events that change the state.

>>> state = starting_state(model, [model.layer4], input_tensor, rgb_image, "GradCAM", 0.5, "inferno")  # doctest: +SKIP
>>> state.image, state.layer                                                                    # doctest: +SKIP
('both.png', 'layer4')
>>> state.set_class_options(probabilities)          # top-5 first, then the lesson's classes  # doctest: +SKIP
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field, fields
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image as PILImage
from torch import nn

from .cam import shown_name
from .downloads import cache_dir, lesson_images
from .images import load_image, target_size
from .labels import LABELS, LESSON_CLASSES, check_class_id
from .models import layer_choices
from .targets import class_names_of, describe_target

#: How many of your uploads an explorer keeps (the oldest leaves the image list).
MAX_UPLOADS = 3
YOUR_IMAGE = "(your image)"
#: The class id that stands for the target given to explore() (a function of the model's output).
TARGET = -1

LoadedImage = Tuple[torch.Tensor, np.ndarray]


class Message(Exception):
    """A problem explained for people: the widget shows its text as it is."""


@dataclass
class ExplorerState:
    """What an explorer shows, and what there is to choose from.

    ``images``: name -> ``(input_tensor, rgb_image)`` of the images loaded so far, and
    ``image_options`` every name offered; ``layers``: name -> a weak reference to the layer;
    ``class_ids``: the classes offered; ``searched``: those found with the search box (kept
    across images); ``uploads``: the names of your uploads, oldest first. ``names``: the class
    names, one per class of the model (``given_names``, Hugging Face's ``id2label``, ImageNet's for
    1000 classes, else "class 0", "class 1"...), known once the model has run. ``target``: a target
    given to explore() (offered as ``TARGET``); ``probability``: "auto", "softmax", "sigmoid" or None.
    """

    images: Dict[str, LoadedImage]
    layers: Dict[str, "weakref.ReferenceType[nn.Module]"]
    image: str
    layer: str
    method: str
    alpha: float
    cmap: str
    class_id: Optional[int] = None
    image_options: List[str] = field(default_factory=list)
    class_ids: List[int] = field(default_factory=list)
    searched: List[int] = field(default_factory=list)
    uploads: List[str] = field(default_factory=list)
    given_names: Optional[Tuple[str, ...]] = None
    names: Tuple[str, ...] = ()
    target: object = None
    probability: object = "auto"

    def label(self, class_id: int) -> str:
        """``"245 · French bulldog"``, or ``"1 · class 1"`` for a model of other classes; the target's
        description for ``TARGET``."""
        if class_id == TARGET:
            return describe_target(self.target)
        return f"{class_id} · {self.names[class_id]}"

    def snapshot(self) -> Dict[str, object]:
        """Every field, with copies of its lists and dicts: ``restore`` puts them back."""
        return {f.name: _copy(getattr(self, f.name)) for f in fields(self)}

    def restore(self, snapshot: Dict[str, object]) -> None:
        for name, value in snapshot.items():
            setattr(self, name, _copy(value))

    def set_class_options(self, probabilities: torch.Tensor, keep: Optional[int] = None,
                          model: Optional[nn.Module] = None) -> None:
        """The target given to explore() first, then the top-5 of this image, the lesson's classes, and any
        found by search.

        The class shown stays chosen (``keep``, else the current one, else the target, else the top
        class). ``keep`` must be one of the model's classes (``probabilities`` holds one per class;
        none for a model whose output holds no class scores: then the target alone is offered).
        """
        given = [TARGET] if self.target is not None else []
        if len(probabilities) == 0:
            self.class_id, self.class_ids = TARGET, given
            return
        self.names = self.names or class_names_for(len(probabilities), self.given_names, model)
        if keep is not None and keep != TARGET:
            try:
                keep = check_class_id(keep, len(probabilities))
            except ValueError as error:
                raise ValueError(f"{error}: this model has {len(probabilities)} classes") from None
        top5 = [int(i) for i in torch.topk(probabilities, min(5, len(probabilities))).indices]
        wanted = keep if keep is not None else self.class_id
        self.class_id = (given + top5)[0] if wanted is None else wanted
        lesson = list(LESSON_CLASSES) if self.names == LABELS else []     # ImageNet's classes only
        self.class_ids = list(dict.fromkeys(given + top5 + lesson + self.searched + [self.class_id]))

    def add_upload(self, name: str, image: LoadedImage) -> None:
        """Offer and choose an upload; the oldest beyond ``MAX_UPLOADS`` leave the images."""
        self.images[name] = image
        self.image_options.append(name)
        self.image = name
        self.uploads.append(name)
        for old in [u for u in self.uploads if u in self.images][:-MAX_UPLOADS]:
            del self.images[old]
            self.image_options.remove(old)


def starting_state(model: nn.Module, target_layers: Sequence[nn.Module], input_tensor: torch.Tensor,
                   rgb_image: np.ndarray, method: str, alpha: float, cmap: str,
                   image_name: Optional[str] = None, class_names: Optional[Sequence[str]] = None,
                   target: object = None, probability: object = "auto") -> ExplorerState:
    """The state that ``explore()``'s arguments ask for; its class is chosen once the model has run."""
    layers = layer_options(model, target_layers)
    first = image_name or lesson_image_name(rgb_image, model) or YOUR_IMAGE
    with torch.inference_mode(False):                  # an inference tensor's clone is a normal one
        images = {first: (input_tensor.clone(), rgb_image)}
    first_layer = next(name for name, ref in layers.items() if ref() is target_layers[0])
    given = None if class_names is None else tuple(class_names)
    return ExplorerState(images, layers, first, first_layer, method, alpha, cmap,
                         image_options=list(dict.fromkeys([first] + lesson_images())), given_names=given,
                         target=target, probability=probability)


def class_names_for(count: int, given: Optional[Sequence[str]] = None,
                    model: Optional[nn.Module] = None) -> Tuple[str, ...]:
    """The names of a model's ``count`` classes (``helpers.targets.class_names_of``): ``given``
    (checked), Hugging Face's ``config.id2label``, ImageNet's for 1000, else "class 0"...

    >>> class_names_for(2)
    ('class 0', 'class 1')
    """
    return class_names_of(model, count, given)


def _copy(value: object) -> object:
    return dict(value) if isinstance(value, dict) else list(value) if isinstance(value, list) else value


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


def upload_to_image(name: str, content: bytes, model: Optional[nn.Module] = None) -> LoadedImage:
    """``load_image`` for an uploaded file, with a message for people when it is not an image."""
    try:
        return load_image(bytes(content), model=model)
    except (OSError, ValueError) as error:
        reason = str(error).replace(f"the {len(content)} image bytes", name)
        if "not an image" in reason or "empty" in reason:
            raise Message(f"That file is not an image we can open ({name}). Try a JPEG or PNG.") from None
        raise Message(f"We could not use {name}: {reason}") from None


def layer_options(model: nn.Module, target_layers: Sequence[nn.Module]) -> Dict[str, "weakref.ReferenceType"]:
    """The explorer's layer list, by name: ``layer_choices``, with the given layers not among them first."""
    try:
        options = dict(layer_choices(model))
    except ValueError:
        options = {}
    given = {shown_name(model, layer): layer for layer in target_layers
             if not any(layer is known for known in options.values())}
    return {name: weakref.ref(layer) for name, layer in {**given, **options}.items()}


def class_from_text(text: str, names: Sequence[str] = LABELS) -> int:
    """The class that the search text names: "340 · zebra", "340", or the first name containing it.

    ``names`` are the model's class names (one per class: ImageNet's, or your own); else a ``Message``.

    >>> class_from_text("tabby")
    281
    """
    text = text.strip()
    number = text.split("·", 1)[0].strip()
    if number.isascii() and number.isdigit():            # "²".isdigit() is True, but int("²") fails
        if int(number) >= len(names):
            raise Message(f"This model has {len(names)} classes (0 to {len(names) - 1}); "
                          f"there is no class {int(number)}.")
        return int(number)
    needle = text.casefold()
    matches = [i for i, name in enumerate(names) if needle in name.casefold()]
    if not matches and names == LABELS:
        raise Message(f"No class name contains {text!r}; try a shorter piece, such as 'dog'.")
    if not matches:
        raise Message(f"No class name of this model contains {text!r}; its {len(names)} classes are "
                      f"{', '.join(names[:5])}{', ...' if len(names) > 5 else ''}.")
    return matches[0]
