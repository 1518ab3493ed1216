"""Finding the layers GradCAM can look at in any image classifier, and reading their outputs.

GradCAM needs a layer whose output is a grid of feature vectors, one per position: a feature
map. Convolutional networks give ``[N, C, h, w]`` (channels first). Others give the same grid
in another layout, which is turned into ``[N, C, h, w]`` before GradCAM sees it:

- ``"NHWC"``: channels last, ``[N, h, w, C]`` (torchvision's Swin, ConvNeXt blocks inside);
- ``"tokens"``: a vision transformer's ``[N, p + h*w, C]``, with ``p`` class/register tokens first.

The layout is read from the shape and the input image's size: a grid must fit the image, with
the same step (stride) across and down. See :func:`infer_layout` for the exact rule.

``survey(model)`` runs the model once on a blank image (in eval mode, without gradients,
hooks removed after) and lists every layer whose output is such a grid, in the order the
layers finish. ``target_layer_choices`` picks from that list (the lesson's two models,
ResNet-50 and EfficientNet-Lite0, by name); ``helpers.models`` and ``helpers.cam`` use it.

>>> from torchvision.models import vgg11_bn                      # doctest: +SKIP
>>> target_layer_choices(vgg11_bn(weights=None))[0].name         # doctest: +SKIP
'features'
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .modelstate import eval_mode, model_device, model_dtype, model_lock

#: Layers that only pool, drop, flatten or rearrange: never a target of their own.
PASS_THROUGH = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.Dropout, nn.Dropout2d,
                nn.Identity, nn.Flatten)
PASS_THROUGH_NAMES = {"Permute", "SelectAdaptivePool2d", "StochasticDepth", "DropPath", "Flatten"}
#: The largest number of class/register/distillation tokens looked for in front of the patch tokens.
MAX_PREFIX_TOKENS = 8


@dataclass(frozen=True)
class Layout:
    """How a layer's output holds its grid: ``kind`` is "NCHW", "NHWC" or "tokens"."""

    kind: str
    grid: Tuple[int, int]
    prefix: int = 0

    def describe(self) -> str:
        if self.kind == "tokens":
            extra = f"{self.prefix} + " if self.prefix else ""
            first = f", the first {self.prefix} being class or register tokens" if self.prefix else ""
            return f"tokens [N, {extra}{self.grid[0]}*{self.grid[1]}, C]{first}"
        return {"NCHW": "a feature map [N, C, h, w]", "NHWC": "channels last [N, h, w, C]"}[self.kind]


def _fits_map(h: int, w: int, height: int, width: int) -> bool:
    """A conv grid: at most the image's size, about the same step across and down (padding rounds)."""
    return 1 <= h <= height and 1 <= w <= width and abs(h * width - w * height) <= height + width


def _fits_patches(h: int, w: int, height: int, width: int) -> bool:
    """A patch grid: one whole step (the patch size) across and down."""
    if not (1 <= h <= height and 1 <= w <= width):
        return False
    step = height // h
    return step >= 1 and height // step == h and width // step == w


def infer_layout(shape: Sequence[int], image_size: Tuple[int, int],
                 prefix_tokens: Optional[int] = None) -> Optional[Layout]:
    """How an output of ``shape`` holds a grid over an image of ``image_size`` (H, W), or None.

    - 4 dimensions: ``[N, C, h, w]`` if ``h, w`` fit the image (same step across and down,
      give or take rounding), else ``[N, h, w, C]`` if those fit. Channels first wins a tie
      (``[N, 7, 7, 7]``), as in every convolutional network; pass ``reshape=`` otherwise.
    - 3 dimensions ``[N, T, C]``: ``T - p`` patch tokens on a grid with a whole patch size,
      after ``p`` leading tokens (``prefix_tokens`` when the model says, else the smallest
      ``p`` from 0 to 8 that fits).

    >>> infer_layout((1, 768, 7, 7), (224, 224)).kind, infer_layout((1, 7, 7, 768), (224, 224)).kind
    ('NCHW', 'NHWC')
    >>> infer_layout((1, 197, 192), (224, 224))
    Layout(kind='tokens', grid=(14, 14), prefix=1)
    >>> infer_layout((1, 1000), (224, 224)) is None
    True
    """
    height, width = image_size
    if len(shape) == 4:
        if _fits_map(shape[2], shape[3], height, width):
            return Layout("NCHW", (int(shape[2]), int(shape[3])))
        if _fits_map(shape[1], shape[2], height, width):
            return Layout("NHWC", (int(shape[1]), int(shape[2])))
        return None
    if len(shape) == 3:
        tokens = int(shape[1])
        prefixes = [prefix_tokens] if prefix_tokens is not None else range(MAX_PREFIX_TOKENS + 1)
        for prefix in prefixes:
            count = tokens - prefix
            if count < 1:
                continue
            guess = max(1, round(math.sqrt(count * height / width)))
            for h in (guess, guess - 1, guess + 1):
                if h >= 1 and count % h == 0 and _fits_patches(h, count // h, height, width):
                    return Layout("tokens", (h, count // h), prefix)
    return None


def to_feature_map(output: torch.Tensor, layout: Layout) -> torch.Tensor:
    """``output`` in ``layout`` as ``[N, C, h, w]`` (a view where possible; tokens in front dropped).

    For ViT tokens this is what pytorch-grad-cam's documented ``reshape_transform`` does:
    ``t[:, 1:, :].reshape(N, h, w, C)`` and channels moved to the front.
    """
    if layout.kind == "NCHW":
        return output
    if layout.kind == "NHWC":
        return output.permute(0, 3, 1, 2)
    h, w = layout.grid
    return output[:, layout.prefix:, :].reshape(output.shape[0], h, w, output.shape[2]).permute(0, 3, 1, 2)


def prefix_tokens(model: nn.Module) -> Optional[int]:
    """How many tokens stand before the patch tokens, when the model says (timm or torchvision ViT)."""
    count = getattr(model, "num_prefix_tokens", None)          # timm: class + register + distillation
    if isinstance(count, int):
        return count
    if type(model).__name__ == "VisionTransformer" and hasattr(model, "class_token"):   # torchvision
        return 1
    return None


def input_size(model: nn.Module) -> Tuple[int, int]:
    """The image size the model was made for: timm's config, torchvision ViT's ``image_size``, else 224."""
    config = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    if isinstance(config, dict) and len(config.get("input_size", ())) == 3:
        return int(config["input_size"][1]), int(config["input_size"][2])
    size = getattr(model, "image_size", None)
    if isinstance(size, int):
        return size, size
    return 224, 224


def needs_fixed_size(model: nn.Module) -> bool:
    """True for models that only take their own input size (most ViTs); CNNs take any size."""
    config = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    if isinstance(config, dict) and config.get("fixed_input_size") and \
            not getattr(getattr(model, "patch_embed", None), "dynamic_img_size", False):
        return True                                   # timm says so (MLP-Mixer, LeViT, ...)
    patch_embed = getattr(model, "patch_embed", None)
    if patch_embed is not None and getattr(patch_embed, "strict_img_size", False) \
            and not getattr(patch_embed, "dynamic_img_size", False):
        return True
    return type(model).__name__ == "VisionTransformer" and hasattr(model, "image_size")   # torchvision


#: The blank image of the dry run, for models that take any size (a small one: quick).
DRY_RUN_SIZE = 128


def dry_run_size(model: nn.Module) -> Tuple[int, int]:
    """The model's own input size where it needs it (ViTs), else ``DRY_RUN_SIZE`` square."""
    return input_size(model) if needs_fixed_size(model) else (DRY_RUN_SIZE, DRY_RUN_SIZE)


@dataclass(frozen=True)
class LayerOutput:
    """One layer's output in the dry run: its name, the layer, the shape and how it holds its grid."""

    name: str
    module: nn.Module
    shape: Tuple[int, ...]
    layout: Layout


def display_name(name: str) -> str:
    """``"features.5"`` as ``"features[5]"``, the way you would type it after ``model.``."""
    out = ""
    for part in name.split("."):
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


_SURVEYS: "weakref.WeakKeyDictionary[nn.Module, Tuple[int, List[LayerOutput]]]" = weakref.WeakKeyDictionary()


def survey(model: nn.Module) -> List[LayerOutput]:
    """Every layer whose output is a grid, in the order the layers finish, from one dry run.

    The dry run feeds one blank image (``dry_run_size``), in eval mode and without
    gradients; every hook is removed and every submodule's mode restored after, on error too.
    The answer is remembered for this model until its set of layers changes.
    """
    # The model's lock is held for the whole survey, so another thread's forward pass cannot
    # fire the dry run's hooks (nor is a result computed while racing remembered).
    with model_lock(model):
        return _survey_locked(model)


def _survey_locked(model: nn.Module) -> List[LayerOutput]:
    signature = hash(tuple(id(module) for module in model.modules()))
    cached = _SURVEYS.get(model)
    if cached is not None and cached[0] == signature:
        return cached[1]
    size = dry_run_size(model)
    prefix = prefix_tokens(model)
    names = {module: name for name, module in model.named_modules() if name}
    found: List[LayerOutput] = []

    def hook(module: nn.Module, inputs, output) -> None:
        if not isinstance(output, torch.Tensor) or module not in names:
            return
        if isinstance(module, PASS_THROUGH) or type(module).__name__ in PASS_THROUGH_NAMES:
            return
        layout = infer_layout(tuple(output.shape), size, prefix)
        if layout is not None and layout.grid[0] * layout.grid[1] > 1:
            found.append(LayerOutput(display_name(names[module]), module, tuple(output.shape), layout))

    blank = torch.zeros(1, 3, *size, dtype=model_dtype(model), device=model_device(model))
    handles = [module.register_forward_hook(hook) for module in names]
    try:
        with eval_mode(model), torch.no_grad():
            model(blank)
    finally:
        for handle in handles:
            handle.remove()
    _SURVEYS[model] = (signature, found)
    return found


def _has_attention_child(module: nn.Module) -> bool:
    return any(isinstance(child, nn.MultiheadAttention) or "Attention" in type(child).__name__
               for child in module.children())


def _first_layer_norm(module: nn.Module) -> Optional[Tuple[str, nn.Module]]:
    for name, child in module.named_modules():
        if isinstance(child, nn.LayerNorm):
            return name, child
    return None


@dataclass(frozen=True)
class Choice:
    """A target layer picked automatically: the layer, its name, and why it was picked."""

    name: str
    module: nn.Module
    reason: str


def _transformer_blocks(model: nn.Module, outputs: List[LayerOutput]) -> List[Choice]:
    """Each transformer block's first LayerNorm, last block first."""
    ran = {id(output.module): output for output in outputs}
    choices = []
    for name, module in model.named_modules():
        if name and _has_attention_child(module):
            norm = _first_layer_norm(module)
            if norm is not None and id(norm[1]) in ran:
                full = display_name(f"{name}.{norm[0]}")
                choices.append(Choice(full, norm[1], ""))
    return choices[::-1]


def _depth(name: str) -> int:
    return name.count(".") + name.count("[")


def surveyed_choices(model: nn.Module, limit: int = 4) -> List[Choice]:
    """Candidate target layers of any classifier, from its dry run, coarse (deep) to fine (shallow).

    - Vision transformers (the last grid the model makes is tokens): each block's first
      LayerNorm (``blocks[-1].norm1`` in timm, ``encoder.layers[-1].ln_1`` in torchvision),
      last block first.
    - Everything else: for each grid size, coarsest first, the outermost layer (fewest dots
      in its name) that outputs a map of that size, the last to finish among those: the
      model's stages (``layer4``, ``features``, ``features[5]``...). At most ``limit``.
    """
    outputs = survey(model)
    if not outputs:
        raise ValueError(f"no layer of this {type(model).__name__} gives a spatial feature map (a grid of "
                         f"positions) for a {input_size(model)} image; pass target_layers yourself")
    last = outputs[-1]
    if last.layout.kind == "tokens":
        blocks = _transformer_blocks(model, outputs)
        if blocks:
            first = blocks[0]
            reason = (f"{first.name}: the last transformer block's first LayerNorm, which holds "
                      f"{last.shape[1]} tokens ({last.layout.describe()}). Its patch tokens still reach "
                      f"the class score through the block's attention; the last block's own output "
                      f"reaches the score only through the class token, so GradCAM there is blank.")
            return [Choice(first.name, first.module, reason)] + blocks[1:limit]
    by_grid: Dict[Tuple[int, int], LayerOutput] = {}
    for output in outputs:                          # in finishing order: a later one of equal depth wins
        if output.layout.kind == "tokens":
            continue
        best = by_grid.get(output.layout.grid)
        if best is None or _depth(output.name) <= _depth(best.name):
            by_grid[output.layout.grid] = output
    ordered = sorted(by_grid.values(), key=lambda o: o.layout.grid[0] * o.layout.grid[1])
    if not ordered:
        raise ValueError(f"no layer of this {type(model).__name__} gives a feature map; pass target_layers yourself")
    first = ordered[0]
    height, width = dry_run_size(model)
    step = height // first.layout.grid[0]
    channels = first.shape[1] if first.layout.kind == "NCHW" else first.shape[-1]
    layout = "" if first.layout.kind == "NCHW" else \
        " Its output is channels last, [N, h, w, C]; GradCAM turns it into [N, C, h, w] automatically."
    reason = (f"{first.name}: the last layer whose output is a spatial feature map: {channels} channels on a "
              f"grid with one position per {step} pixels ({224 // step}x{224 // step} for a 224 px image). "
              f"After it the model pools the grid away, so this is the last layer that says where.{layout}")
    return [Choice(first.name, first.module, reason)] + [Choice(o.name, o.module, "") for o in ordered[1:limit]]


# --- the lesson's two models, by name; any other classifier from its dry run ---------------------

def is_resnet(model: nn.Module) -> bool:
    """True for torchvision's ResNets (the lesson's ResNet-50)."""
    from torchvision.models import ResNet       # torchvision loads on first use, not with the helpers

    return isinstance(model, ResNet)


def is_efficientnet(model: nn.Module) -> bool:
    """True for timm's EfficientNets (the lesson's stand-in, EfficientNet-Lite0)."""
    return type(model).__name__ == "EfficientNet" and hasattr(model, "blocks") and hasattr(model, "conv_head")


def target_layer_choices(model: nn.Module) -> List[Choice]:
    """Candidate target layers from coarse (deep) to fine (shallow); the first is the default.

    ResNets: ``layer4`` to ``layer1``; the stand-in: its last four blocks; any other
    classifier: ``surveyed_choices`` (one dry run). A model the dry run fails on gets a
    ``ValueError`` that says so.
    """
    if is_resnet(model):
        reason = ("layer4: ResNet's last convolutional stage (2048 feature maps of 7x7 for a 224 px image); "
                  "after it the model averages the grid away, so this is the last place that says where.")
        return [Choice(name, getattr(model, name), reason if name == "layer4" else "")
                for name in ("layer4", "layer3", "layer2", "layer1")]
    if is_efficientnet(model):
        count = len(model.blocks)
        reason = (f"blocks[{count - 1}]: the last block of EfficientNet's convolutional stages (the lesson's "
                  f"choice for the stand-in; only a 1x1 convolution head follows before the pooling).")
        return [Choice(f"blocks[{i}]", model.blocks[i], reason if i == count - 1 else "")
                for i in range(count - 1, max(count - 5, -1), -1)]
    try:
        return surveyed_choices(model)
    except ValueError:
        raise
    except Exception as error:  # noqa: BLE001 - the dry run can fail in any way for a non-classifier
        raise ValueError(f"could not find target layers for a {type(model).__name__}: a dry run on a blank "
                         f"image failed ({type(error).__name__}: {error}); pass target_layers yourself") from error
