"""What GradCAM explains: one score per image, read from whatever the model returns.

A *target* says which score, for one image:

- a class id (``245``): that class's score (its logit) among the model's class scores;
- ``None``: the class with the highest score (the model's top class);
- a function of the model's output *for that image* that returns one number. pytorch-grad-cam's
  target objects work unchanged (``ClassifierOutputTarget(245)``, ``SemanticSegmentationTarget(k,
  mask)``, ``FasterRCNNBoxScoreTarget(labels, boxes)``, ``BinaryClassifierOutputTarget(1)``,
  and the ``SimilarityToConceptTarget(concept)`` of its tutorial), and so does a function of your own
  (``lambda output: output[281] - output[245]``).

The model's output for one image (``image_output``) is what pytorch-grad-cam's targets expect:

- a classifier's scores ``[classes]`` (also inside a Hugging Face output: its ``logits``);
- a segmentation's scores per pixel ``[classes, H, W]`` (torchvision's ``output["out"]``: no wrapper);
- a detector's dict of ``boxes``, ``labels`` and ``scores`` (torchvision returns one per image);
- an embedding ``[D]`` (Hugging Face's ``pooler_output`` or ``image_embeds``);
- anything else: the same structure (dict, tuple, object) holding that image's part of each tensor.

``target_scores(output, targets)`` gives the scores ``[N]`` (differentiable): ``helpers.cam`` takes
their gradient. Where a class id or ``None`` cannot be read as a class (a segmentation, a detector,
an embedding, several heads), the ``ValueError`` names the target to use, as code.

This module also says what the classes are called (``class_names_of``: your names, Hugging Face's
``config.id2label``, ImageNet's for 1000 classes, else "class k") and how scores become
probabilities (``probability_of``: softmax, sigmoid for a multi-label model, or none).

>>> scores = torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 0.5]], requires_grad=True)
>>> target_scores(scores, [None, lambda output: output[2] - output[0]])
tensor([ 2.0000, -2.5000], grad_fn=<StackBackward0>)
>>> chosen_classes(scores, [None, max])
[1, None]
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .labels import LABELS, check_class_id

#: One image's target: a class id, None (the top class), or a function of the model's output for one image.
Target = Union[None, int, Callable[[Any], torch.Tensor]]

#: The keys (or attributes) that hold what a model's output is about, in this order: a classifier's
#: scores (Hugging Face), torchvision's segmentation scores, an embedding (Hugging Face).
MAIN_KEYS = ("logits", "out", "pooler_output", "image_embeds")
#: Keys that make an output an embedding, not class scores (Hugging Face's models without a head).
EMBEDDING_KEYS = ("pooler_output", "image_embeds", "last_hidden_state")


# --- the output for one image ------------------------------------------------------------------

def _get(output: object, key: str) -> object:
    return output.get(key) if isinstance(output, Mapping) else getattr(output, key, None)


def main_tensor(output: object) -> Optional[torch.Tensor]:
    """The one tensor ``output`` is about: itself, or its ``logits``, ``out``, ``pooler_output`` or
    ``image_embeds``; None for anything else (a tuple, a list of detections, a dict of heads)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        return None
    for key in MAIN_KEYS:
        value = _get(output, key)
        if isinstance(value, torch.Tensor):
            return value
    return None


def image_output(output: object, index: int = 0, batch: Optional[int] = None) -> object:
    """The model's ``output`` for image ``index`` of the batch: what a target is given.

    The main tensor's row (``main_tensor``); a list of one item per image (torchvision's
    detections): that image's item; a dict, tuple or object: the same, holding that image's part
    of every tensor whose first dimension is the batch (``batch``: its size, when known).

    >>> image_output({"out": torch.zeros(2, 21, 8, 8), "aux": torch.zeros(2, 21, 8, 8)}, 1).shape
    torch.Size([21, 8, 8])
    >>> image_output([{"scores": torch.tensor([0.9])}, {"scores": torch.tensor([])}], 0)
    {'scores': tensor([0.9000])}
    """
    main = main_tensor(output)
    if main is not None:
        return main[index] if main.dim() >= 1 else main
    if isinstance(output, (tuple, list)):
        if output and not any(isinstance(item, torch.Tensor) for item in output) and \
                (batch is None or len(output) == batch):
            return output[index]                      # one item per image (detections)
        items = [_part(item, index, batch) for item in output]
        return type(output)(*items) if hasattr(output, "_fields") else type(output)(items)
    if isinstance(output, Mapping):
        return {key: _part(value, index, batch) for key, value in output.items()}
    if hasattr(output, "__dict__"):
        part = copy.copy(output)
        for key, value in vars(output).items():
            setattr(part, key, _part(value, index, batch))
        return part
    return output


def _part(value: object, index: int, batch: Optional[int]) -> object:
    if isinstance(value, torch.Tensor):
        return value[index] if value.dim() >= 1 and (batch is None or value.shape[0] == batch) else value
    if isinstance(value, (tuple, list, Mapping)):
        return image_output(value, index, batch)
    return value


# --- class scores, and what to do when there are none --------------------------------------------

def class_scores(output: object) -> torch.Tensor:
    """The class scores ``[N, classes]`` in what a model returned.

    A tensor ``[N, classes]`` is taken as it is, and ``[N]`` (one score per image: a regression, a
    binary classifier's logit) as ``[N, 1]``. From anything else: its ``logits`` (Hugging Face's
    outputs, a dict with a "logits" key), or else the one tensor of two dimensions among its items
    (a tuple, list, named tuple or dict). Otherwise a ``ValueError`` says what the model returned
    and, as code, which target to use for that kind of output (``target_advice``).

    >>> class_scores({"logits": torch.zeros(1, 10), "features": torch.zeros(1, 8, 4, 4)}).shape
    torch.Size([1, 10])
    """
    if isinstance(output, torch.Tensor):
        if output.dim() == 2:
            return output
        if output.dim() == 1:
            return output[:, None]
        raise ValueError(target_advice(output))
    logits = _get(output, "logits")
    if isinstance(logits, torch.Tensor) and logits.dim() in (1, 2):
        return logits if logits.dim() == 2 else logits[:, None]
    if not isinstance(logits, torch.Tensor) and output_kind(output) == "heads":
        scores = [tensor for _, tensor in _tensors(output) if tensor.dim() == 2]
        if len(scores) == 1:
            return scores[0]
    raise ValueError(target_advice(output))


def _tensors(output: object) -> List[Tuple[str, torch.Tensor]]:
    """(how to reach it, tensor) for each tensor directly inside ``output``: '["key"]', '[0]' or '.name'."""
    if isinstance(output, Mapping):
        return [(f"[{key!r}]".replace("'", '"'), value) for key, value in output.items()
                if isinstance(value, torch.Tensor)]
    if isinstance(output, (tuple, list)):
        return [(f"[{i}]", value) for i, value in enumerate(output) if isinstance(value, torch.Tensor)]
    if hasattr(output, "__dict__"):
        return [(f".{key}", value) for key, value in vars(output).items() if isinstance(value, torch.Tensor)]
    return []


def output_kind(output: object) -> str:
    """What kind of output this is: "scores", "dense" (per pixel), "detections", "embedding",
    "tokens", "heads" (a structure of tensors) or "other"."""
    main = main_tensor(output)
    if main is not None:
        if isinstance(output, torch.Tensor) or _get(output, "logits") is main:
            return {1: "scores", 2: "scores", 3: "tokens", 4: "dense"}.get(main.dim(), "other")
        if _get(output, "out") is main:
            return "dense" if main.dim() == 4 else "scores" if main.dim() in (1, 2) else "other"
        return "embedding"
    if any(isinstance(_get(output, key), torch.Tensor) for key in EMBEDDING_KEYS) and not _tensors_of_dim(output, 2):
        return "embedding"
    if isinstance(output, (tuple, list)) and output and all(isinstance(item, Mapping) for item in output) \
            and all("scores" in item or "boxes" in item for item in output):
        return "detections"
    return "heads" if _tensors(output) else "other"


def _tensors_of_dim(output: object, dim: int) -> List[Tuple[str, torch.Tensor]]:
    return [(path, tensor) for path, tensor in _tensors(output) if tensor.dim() == dim]


def _a(word: str) -> str:
    return f"an {word}" if word[:1].lower() in "aeiou" else f"a {word}"


def _where(path: str) -> str:
    """'["out"]' as '"out"', '[0]' as 'item 0', '.scores' as 'scores'."""
    if path.startswith("."):
        return path[1:]
    inner = path[1:-1]
    return inner if inner.startswith('"') else f"item {inner}"


def _shape(tensor: torch.Tensor) -> str:
    return str(list(tensor.shape))


def _code(text: str) -> str:
    """Code a message suggests, in backticks (the tests find it there and run it)."""
    return f"`{text}`"


def _most_pixels(scores: torch.Tensor) -> int:
    """The class that the most pixels of one image's scores ``[classes, H, W]`` give their highest score."""
    return int(torch.bincount(scores.detach().argmax(0).flatten().cpu()).argmax())


def target_advice(output: object) -> str:
    """Why ``output`` holds no class scores ``[N, classes]``, and which target to pass instead, as code."""
    kind = output_kind(output)
    got = describe_output(output)
    if kind == "dense":
        scores = main_tensor(output)
        k = _most_pixels(scores[0])
        where = ' in "out"' if not isinstance(output, torch.Tensor) else ""
        return (f"the model returned {got}: a score per class and pixel{where} (a segmentation), not one score per "
                f"class, so a class id does not say which pixels to explain. Pass a target, a function of one "
                f"image's scores [classes, H, W] that gives one number, for example "
                f"{_code(f'target=lambda output: output[{k}][output.argmax(0) == {k}].sum()')}: class {k}'s scores "
                f"summed over the pixels where it is the top class (class {k} is the top class of most pixels of "
                f"the first image). pytorch-grad-cam's SemanticSegmentationTarget({k}, mask) is the same with a "
                f"mask of your own, and works here unchanged")
    if kind == "detections":
        first = output[0]
        empty = isinstance(first.get("scores"), torch.Tensor) and first["scores"].numel() == 0
        found = (" The first image has no detection at all (every score was below the model's threshold, "
                 "such as model.roi_heads.score_thresh): there is nothing to explain in it.") if empty else ""
        code = _code('target=lambda output: output["scores"][0]')
        return (f"the model returned {got}: detections (boxes, labels and scores of each image), not class scores. "
                f"Pass a target, a function of one image's detections that gives one number, for example "
                f"{code}: the score of its most confident "
                f"detection (torchvision sorts them, highest first). pytorch-grad-cam's "
                f"FasterRCNNBoxScoreTarget(labels, boxes) follows boxes of your own, and works here unchanged."
                f"{found}")
    if kind in ("embedding", "tokens"):
        main = main_tensor(output)
        if kind == "tokens":
            path, what = "[0]", f"tokens {_shape(output)}"              # the first token (a class token)
        elif main is None:
            key = next(key for key in EMBEDDING_KEYS if isinstance(_get(output, key), torch.Tensor))
            path, what = f'["{key}"][0]', f"tokens {_shape(_get(output, key))} ({key})"
        else:
            path, what = "", f"an embedding {_shape(main)}"
        concept = f"concept = image_output(model(reference_tensor)){path}.detach()"
        target = f"target=lambda output: torch.cosine_similarity(output{path}, concept, dim=0)"
        return (f"the model returned {got}: {what}, not class scores, and a dimension of an embedding is not a "
                f"class. Explain how similar the image is to a concept, an embedding of your own, for example that "
                f"of a reference image: {_code(concept)} (image_output from helpers.targets), then {_code(target)}. "
                f"The SimilarityToConceptTarget(concept) of pytorch-grad-cam's tutorial is the same where the output is "
                f"one vector per image")
    if kind == "heads":
        tensors = _tensors(output)
        scores = [(path, tensor) for path, tensor in tensors if tensor.dim() == 2]
        maps = [(path, tensor) for path, tensor in tensors if tensor.dim() == 4]
        if scores:
            path, tensor = scores[0]
            wrap = f"lambda output: output{path}" if path.startswith(".") else path[1:-1]
            many = "which of them are the class scores [N, classes] is not clear" if len(scores) > 1 else \
                "none of them class scores [N, classes]"
            return (f"the model returned {got}, and {many}: say which score to explain with a target, a function "
                    f"of one image's output (the same {type(output).__name__}, holding that image's part of each "
                    f"tensor), for example {_code(f'target=lambda output: output{path}[0]')} (class 0 of "
                    f"{_where(path)}); or wrap the model so that it returns those scores: "
                    f"{_code(f'ClassScores(model, {wrap})')} (from helpers.models)")
        if maps:
            path, tensor = maps[0]
            k = _most_pixels(tensor[0])
            return (f"the model returned {got}, none of them class scores [N, classes]. If they are a backbone's "
                    f"feature maps (timm's features_only=True), GradCAM needs a score: make the model without "
                    f"features_only, or give it a classifier head. If {_where(path)} "
                    f"holds a score per class and pixel (a segmentation), pass a target such as "
                    f"{_code(f'target=lambda output: output{path}[{k}][output{path}.argmax(0) == {k}].sum()')}: "
                    f"class {k}'s scores summed over the pixels where it is the top class")
        path, tensor = tensors[0]
        return (f"the model returned {got}, none of them class scores [N, classes]: pass a target, a function of "
                f"one image's output that gives one number, for example "
                f"{_code(f'target=lambda output: output{path}.sum()')}")
    if isinstance(output, torch.Tensor):
        return (f"the model returned a tensor of shape {_shape(output)}, not class scores [N, classes]: pass a "
                f"target, a function of one image's output {_shape(output[0])} that gives one number, for example "
                f"{_code('target=lambda output: output.sum()')}")
    return (f"the model returned {got}, which holds no tensor that can be read as scores: pass a target, a "
            f"function of the model's output for one image that gives one number (a tensor), or wrap the "
            f"model so that it returns its class scores [N, classes] (ClassScores from helpers.models)")


def describe_output(output: object) -> str:
    """A model's output in a few words: "a Tensor [1, 10]", "a dict of 2 tensors ("out" [1, 21, 64, 64], ...)"."""
    if isinstance(output, torch.Tensor):
        return f"a tensor {_shape(output)}"
    kind = type(output).__name__
    if isinstance(output, (tuple, list)) and output and all(isinstance(item, Mapping) for item in output):
        keys = ", ".join(map(str, output[0]))
        return f"{_a(kind)} of {len(output)} dicts (keys {keys})"
    tensors = _tensors(output)
    if not tensors:
        return _a(kind)
    parts = ", ".join(_shape(t) if isinstance(output, (tuple, list)) else f"{_where(path)} {_shape(t)}"
                      for path, t in tensors)
    return f"{_a(kind)} of {len(tensors)} tensor{'s' if len(tensors) > 1 else ''} ({parts})"


# --- the scores of the targets ----------------------------------------------------------------------

def as_targets(targets: object, count: int) -> List[Target]:
    """``targets`` as a list of one target per image: a single target (not a list) is used for every image."""
    if isinstance(targets, (list, tuple)):
        targets = list(targets)
        if len(targets) != count:
            raise ValueError(f"give one class id per image (or one target each): {len(targets)} for {count} images; for the "
                             f"same target on every image, pass it alone or as {_code(f'[target] * {count}')}")
        return targets
    if isinstance(targets, torch.Tensor) and targets.dim() == 1 and targets.numel() == count and count > 1:
        return [int(t) for t in targets]             # logits.argmax(1) for a batch
    return [targets] * count


def _is_class(target: object) -> bool:
    return target is None or not callable(target)


def target_scores(output: object, targets: Sequence[Target]) -> torch.Tensor:
    """One score per image, ``[N]``, differentiable: each image's target read from the model's ``output``.

    ``targets`` holds one target per image (see the module's docstring): a class id, None (the top
    class), or a function of ``image_output(output, i)`` that returns one number. Class ids are
    checked against the model's own class count.

    >>> target_scores(torch.tensor([[1.0, 5.0], [2.0, 0.0]]), [1, 1])
    tensor([5., 0.])
    """
    targets = list(targets)
    count = len(targets)
    if all(_is_class(target) for target in targets):
        scores = _checked_scores(output, count)
        ids = [int(scores[i].argmax()) if t is None else _class_id(t, scores.shape[1]) for i, t in enumerate(targets)]
        index = torch.as_tensor(ids, device=scores.device).reshape(-1, 1)
        return scores.gather(1, index)[:, 0]
    scores = None
    values = []
    for i, target in enumerate(targets):
        if _is_class(target):
            scores = _checked_scores(output, count) if scores is None else scores
            k = int(scores[i].argmax()) if target is None else _class_id(target, scores.shape[1])
            values.append(scores[i, k])
        else:
            values.append(_one_number(_call(target, image_output(output, i, count), i), target, i))
    dtype = values[0].dtype if all(v.dtype == values[0].dtype for v in values) else torch.float32
    return torch.stack([value.to(dtype) for value in values])


def _checked_scores(output: object, count: int) -> torch.Tensor:
    scores = class_scores(output)
    if scores.shape[0] != count:
        raise ValueError(f"the model gave class scores for {scores.shape[0]} images, but there are {count} targets")
    return scores


def _class_id(target: object, count: int) -> int:
    try:
        return check_class_id(target, count)
    except TypeError:
        raise TypeError(f"a target must be a class id (an int in 0..{count - 1}), None (the top class), or a "
                        f"function of the model's output for one image that gives one number (such as "
                        f"pytorch-grad-cam's ClassifierOutputTarget), got {target!r} of type "
                        f"{type(target).__name__}") from None


def _call(target: Callable, one: object, index: int) -> object:
    try:
        return target(one)
    except Exception as error:
        if hasattr(error, "add_note"):               # Python 3.11+: say what the target was given
            error.add_note(f"(helpers: the target {describe_target(target)} was given the model's output for image "
                           f"{index}: {describe_output(one)})")
        raise


def _one_number(value: object, target: object, index: int) -> torch.Tensor:
    """A target's value as a 0-dimensional tensor, or a clear error."""
    name = describe_target(target)
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"the target {name} gave {value.numel()} numbers (shape {_shape(value)}) for image "
                             f"{index}: it must give one; add them up (.sum()) or pick one")
        if torch.is_grad_enabled() and not value.requires_grad:
            raise ValueError(f"the target {name} gave {float(value):.4g} for image {index}, a constant that does "
                             f"not depend on the model's output, so it has no gradient to explain (a "
                             f"FasterRCNNBoxScoreTarget whose boxes match no detection, a mask with no pixel, a "
                             f"value made with .item(), float() or .detach())")
        return value.reshape(())
    if isinstance(value, numbers.Number):
        raise ValueError(f"the target {name} gave a plain {type(value).__name__} ({value}) for image {index}, "
                         f"which does not depend on the model's output: return the tensor itself (no .item() "
                         f"or float())")
    raise TypeError(f"the target {name} gave a {type(value).__name__} for image {index}: it must give one number, "
                    f"a tensor computed from the model's output")


def chosen_classes(output: object, targets: Sequence[Target]) -> List[Optional[int]]:
    """The class each target means: its class id, the top class for None, None for a function."""
    targets = list(targets)
    if not any(_is_class(target) for target in targets):
        return [None] * len(targets)
    scores = _checked_scores(output, len(targets))
    return [None if not _is_class(t) else int(scores[i].argmax()) if t is None else _class_id(t, scores.shape[1])
            for i, t in enumerate(targets)]


def describe_target(target: object, names: Optional[Sequence[str]] = None) -> str:
    """A target in a few words: "the top class", "245 · French bulldog", "SemanticSegmentationTarget(3)"."""
    if target is None:
        return "the top class"
    if not callable(target):
        return class_label(int(target), names) if names is not None else f"class {target}"
    kind = type(target)
    if kind.__name__ == "function":
        name = getattr(target, "__name__", "")
        return "your target (a lambda)" if name == "<lambda>" else f"your target {name}"
    category = getattr(target, "category", None)
    if category is None and hasattr(target, "labels"):
        category = [int(label) for label in target.labels]
    return f"{kind.__name__}({category})" if category is not None else kind.__name__


def embedding_model(model: nn.Module) -> Optional[str]:
    """How ``model`` says that it gives embeddings, not class scores, or None: timm's
    ``num_classes=0``, or a classifier whose head was replaced by ``nn.Identity``."""
    if getattr(model, "num_classes", None) == 0:
        return "num_classes=0"
    for name in ("fc", "classifier", "head", "heads"):
        if isinstance(getattr(model, name, None), nn.Identity):
            return f"model.{name} is nn.Identity()"
    return None


def check_embedding_targets(model: nn.Module, output: object, targets: Sequence[Target]) -> None:
    """A clear error where class ids are asked of a model that gives embeddings (see ``embedding_model``)."""
    how = embedding_model(model)
    if how is None or not any(_is_class(target) for target in targets):
        return
    tensor = main_tensor(output)
    shape = _shape(tensor) if isinstance(tensor, torch.Tensor) else describe_output(output)
    raise ValueError(f"this model gives embeddings ({how}: an output of {shape}), not class scores, and a dimension "
                     f"of an embedding is not a class. Explain how similar the image is to a concept, an embedding "
                     f"of your own, for example that of a reference image: "
                     f"{_code('concept = image_output(model(reference_tensor)).detach()')} (image_output from "
                     f"helpers.targets), then "
                     f"{_code('target=lambda output: torch.cosine_similarity(output, concept, dim=0)')}, as the "
                     f"SimilarityToConceptTarget(concept) of pytorch-grad-cam's tutorial does; {_code('target=lambda output: output[7]')}"
                     f" explains dimension 7 alone, if that is what you want")


# --- class names and probabilities ----------------------------------------------------------------

def hf_config(model: Optional[nn.Module]) -> object:
    """A Hugging Face model's ``config`` (also inside a wrapper), else None."""
    for module in (model.modules() if isinstance(model, nn.Module) else ()):
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "to_dict"):
            return config                             # a Hugging Face model, or one inside a wrapper
    return None


def class_names_of(model: Optional[nn.Module], count: int, given: Optional[Sequence[str]] = None) -> Tuple[str, ...]:
    """The names of a model's ``count`` classes: ``given`` (checked), else Hugging Face's
    ``config.id2label`` (when it names them), ImageNet's for 1000 classes, else "class 0", "class 1"...

    >>> class_names_of(None, 2)
    ('class 0', 'class 1')
    >>> class_names_of(None, 1000)[245]
    'French bulldog'
    """
    if given is not None:
        given = tuple(given)
        if len(given) != count or not all(isinstance(name, str) for name in given):
            raise ValueError(f"class_names must hold one name (a str) per class: the model gives {count} class "
                             f"scores, class_names holds {len(given)} items")
        return given
    labels = getattr(hf_config(model), "id2label", None)
    if isinstance(labels, Mapping) and len(labels) == count:
        names = tuple(str(labels.get(i, labels.get(str(i), f"class {i}"))) for i in range(count))
        if any(name != f"LABEL_{i}" for i, name in enumerate(names)):     # not Hugging Face's placeholders
            return names
    return LABELS if count == len(LABELS) else tuple(f"class {i}" for i in range(count))


def class_label(class_id: int, names: Sequence[str]) -> str:
    """``"245 · French bulldog"``; ``"class 3"`` where the model's classes have no names.

    >>> class_label(3, class_names_of(None, 10)), class_label(281, LABELS)
    ('class 3', '281 · tabby')
    """
    name = names[class_id]
    return name if name == f"class {class_id}" else f"{class_id} · {name}"


#: The ways scores become probabilities.
PROBABILITIES = ("softmax", "sigmoid", None)


@dataclass(frozen=True)
class Probability:
    """How a model's scores become probabilities: ``kind`` ("softmax", "sigmoid" or None: they do
    not), and ``assumed``: a sentence to print where the model does not say, else ""."""

    kind: Optional[str]
    assumed: str = ""

    def of(self, scores: torch.Tensor) -> torch.Tensor:
        """One image's scores ``[classes]`` as probabilities (as they are for ``kind`` None)."""
        scores = scores.detach().reshape(-1).float()
        if self.kind == "softmax":
            return torch.softmax(scores, dim=0)
        return torch.sigmoid(scores) if self.kind == "sigmoid" else scores


def probability_of(model: Optional[nn.Module], count: int, given: object = "auto") -> Probability:
    """How ``model``'s ``count`` scores become probabilities.

    ``given`` ("softmax", "sigmoid" or None) decides. Otherwise, from the model: Hugging Face's
    ``config.problem_type`` ("multi_label_classification": sigmoid; "regression": none), ImageNet's
    1000 classes (softmax); else softmax for several classes and none for one score, *assumed*,
    and ``assumed`` says so.

    >>> probability_of(None, 10).kind, probability_of(None, 1).kind
    ('softmax', None)
    """
    if given != "auto":
        if given not in PROBABILITIES:
            raise ValueError(f"probability must be \"softmax\", \"sigmoid\" or None (the scores as they are), "
                             f"got {given!r}")
        return Probability(given)
    problem = getattr(hf_config(model), "problem_type", None)
    if problem == "multi_label_classification":
        return Probability("sigmoid")
    if problem == "single_label_classification" or (problem is None and count == len(LABELS)):
        return Probability("softmax")
    if problem == "regression":
        return Probability(None)
    if count == 1:
        return Probability(None, "one score, shown as it is (assumed: pass probability=\"sigmoid\" if it is a "
                                 "binary classifier's logit)")
    return Probability("softmax", f"p is a softmax over the {count} classes (assumed: pass probability=\"sigmoid\" "
                                  f"for a multi-label model, None for the scores as they are)")


__all__ = ["Target", "image_output", "main_tensor", "class_scores", "target_advice", "describe_output",
           "output_kind", "as_targets", "target_scores", "chosen_classes", "describe_target", "embedding_model",
           "check_embedding_targets", "hf_config", "class_names_of", "class_label", "Probability", "probability_of",
           "PROBABILITIES"]
