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

import functools
import math
import re
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .modelstate import eval_copy, model_device, model_dtype, model_lock
from .targets import class_scores, hf_config, main_tensor, output_kind

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
      after ``p`` leading tokens (``prefix_tokens`` when the model says, or none: CaiT and
      ConViT add their class token half-way; else the smallest ``p`` from 0 to 8 that fits).

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
        prefixes = range(MAX_PREFIX_TOKENS + 1) if prefix_tokens is None else dict.fromkeys([prefix_tokens, 0])
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


def configured(model: nn.Module) -> nn.Module:
    """The module that says how ``model`` was made: the model itself, or inside a wrapper
    (``nn.Sequential(vit)``, ``DataParallel``, ``torch.compile``) the outermost timm or torchvision
    model; the model itself when none says."""
    for module in model.modules():
        if getattr(module, "pretrained_cfg", None) or getattr(module, "default_cfg", None) \
                or isinstance(getattr(module, "image_size", None), int) or hasattr(module, "num_prefix_tokens"):
            return module
    return model


def prefix_tokens(model: nn.Module) -> Optional[int]:
    """How many tokens stand before the patch tokens, when the model says (timm or torchvision ViT)."""
    model = configured(model)
    count = getattr(model, "num_prefix_tokens", None)          # timm: class + register + distillation
    if isinstance(count, int):
        return count
    if type(model).__name__ == "VisionTransformer" and hasattr(model, "class_token"):   # torchvision
        return 1
    return None


def own_size(model: nn.Module) -> Optional[Tuple[int, int]]:
    """The image size the model says it was made for (height, width), or None when it does not say.

    Hugging Face: ``config.image_size``; timm: the size its (first) patch embedding was built for
    (``img_size=``), else its ``pretrained_cfg``; torchvision: its ViT's ``image_size``, else the
    crop size of the torchvision weights made for its architecture.
    """
    config = hf_config(model)
    size = getattr(config, "image_size", None)
    if isinstance(size, int) or (isinstance(size, (tuple, list)) and len(size) == 2):
        return image_pair(size if isinstance(size, int) else tuple(int(side) for side in size))
    inner = configured(model)
    for module in inner.modules():
        built = getattr(module, "img_size", None)
        if isinstance(built, (tuple, list)) and len(built) == 2 and all(isinstance(side, int) for side in built):
            return int(built[0]), int(built[1])
    timm_config = getattr(inner, "pretrained_cfg", None) or getattr(inner, "default_cfg", None) or {}
    if isinstance(timm_config, dict) and len(timm_config.get("input_size", ())) == 3:
        return int(timm_config["input_size"][1]), int(timm_config["input_size"][2])
    side = getattr(inner, "image_size", None)
    if isinstance(side, int):
        return side, side
    weights = next(filter(None, map(torchvision_weights, model.modules())), None)
    if weights is not None:
        crop = int(weights.transforms().crop_size[0])
        return crop, crop
    return None


def input_size(model: nn.Module) -> Tuple[int, int]:
    """The image size the model was made for (``own_size``), else 224."""
    return own_size(model) or (224, 224)


def torchvision_weights(model: nn.Module):
    """The torchvision ImageNet weights made for ``model``'s architecture, or None.

    Matched by the builder's class and the number of parameters without the classifier (so a
    model given a new head for other classes still matches): ``Inception_V3_Weights.IMAGENET1K_V1``
    for ``inception_v3(num_classes=2)``. Reads torchvision's metadata only; nothing is downloaded.
    """
    if not type(model).__module__.startswith("torchvision.models."):
        return None
    import torchvision.models as models       # torchvision loads on first use, not with the helpers

    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    classes = linears[-1].out_features if linears else None
    heads = [m for m in linears if m.out_features == classes]
    body = sum(p.numel() for p in model.parameters()) - sum(p.numel() for h in heads for p in h.parameters())
    for name in models.list_models(module=models):
        if models.get_model_builder(name).__annotations__.get("return") is not type(model):
            continue
        for weights in models.get_model_weights(name):
            count = len(weights.meta["categories"])
            their_heads = sum(h.in_features * count + (count if h.bias is not None else 0) for h in heads)
            if weights.meta["num_params"] - their_heads == body:
                return weights
    return None


def input_channels(model: nn.Module) -> Optional[int]:
    """How many channels the model's first convolution takes (1 for grey, 3 for RGB), or None.

    >>> input_channels(nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU()))
    1
    """
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return int(module.in_channels)
    return None


def needs_fixed_size(model: nn.Module) -> bool:
    """True for models that only take their own input size (most ViTs); CNNs take any size."""
    model = configured(model)
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
#: The sizes tried next, in order, when a model fails at that one: ImageNet's, CIFAR's, MNIST's, others.
OTHER_SIZES = (224, 32, 28, 64, 96, 256, 299, 384, 512)
#: The centre of the bright spot on the dry run's second image, as fractions (down, across).
SPOT = (0.3125, 0.6875)


def dry_run_size(model: nn.Module) -> Tuple[int, int]:
    """The model's own input size where it needs it (ViTs), else ``DRY_RUN_SIZE`` square."""
    return input_size(model) if needs_fixed_size(model) else (DRY_RUN_SIZE, DRY_RUN_SIZE)


def image_pair(image_size: object) -> Tuple[int, int]:
    """``image_size`` (an int, or (height, width)) as (height, width); a clear error for anything else."""
    pair = (image_size, image_size) if isinstance(image_size, int) else image_size
    if not isinstance(pair, (tuple, list)) or len(pair) != 2 or \
            not all(isinstance(side, int) and not isinstance(side, bool) and side >= 1 for side in pair):
        raise ValueError(f"image_size must be a size in pixels, an int or (height, width), got {image_size!r}")
    return int(pair[0]), int(pair[1])


def dry_run_sizes(model: nn.Module, image_size: Optional[object] = None) -> List[Tuple[int, int]]:
    """The sizes the dry run tries, in order: ``image_size`` alone when given; else the model's own
    (``own_size``: its config, timm's ``pretrained_cfg``, torchvision's weights) first, then
    ``DRY_RUN_SIZE`` and ``OTHER_SIZES``. (A size the model does not take may change a model in
    place, as Hugging Face's Swin shrinks its windows; the dry run runs a copy, so it cannot.)"""
    if image_size is not None:
        return [image_pair(image_size)]
    sides = (DRY_RUN_SIZE,) + OTHER_SIZES
    own = own_size(model)
    return list(dict.fromkeys(([own] if own else []) + [dry_run_size(model), input_size(model)] +
                              [(side, side) for side in sides]))


@dataclass(frozen=True)
class LayerOutput:
    """One layer's output in the dry run: its name, the layer, the shape (for one image), how it holds
    its grid, and its attribute path (``"blocks.11.norm1"``; ``name`` is ``"blocks[11].norm1"``)."""

    name: str
    module: nn.Module
    shape: Tuple[int, ...]
    layout: Layout
    path: str = ""


@dataclass(frozen=True)
class Survey:
    """What a dry run found: the layers whose output is a grid, in the order they finish; the image
    size it ran at; whether the model took only that size (``fixed``); and, by ``id`` of the layer,
    the names of grids whose positions are not in row order (``unordered``: Hiera's unrolled tokens,
    attention weights), which GradCAM cannot reshape without ``reshape=``."""

    outputs: List[LayerOutput]
    size: Tuple[int, int]
    fixed: bool
    unordered: Dict[int, str]
    output: str = "scores"
    output_channels: int = 0


def display_name(name: str) -> str:
    """``"features.5"`` as ``"features[5]"``, the way you would type it after ``model.``."""
    out = ""
    for part in name.split("."):
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


_SURVEYS: "weakref.WeakKeyDictionary[nn.Module, Tuple[int, Dict[object, object]]]" = weakref.WeakKeyDictionary()


def survey(model: nn.Module, image_size: Optional[object] = None) -> List[LayerOutput]:
    """Every layer whose output is a grid, in the order the layers finish, from one dry run (``dry_run``)."""
    return dry_run(model, image_size).outputs


def dry_run(model: nn.Module, image_size: Optional[object] = None) -> Survey:
    """One dry run of ``model``: a blank image, and the same with a bright spot, as one batch.

    It runs in eval mode and without gradients, at the first of ``dry_run_sizes`` the model
    takes (``image_size`` when given); every hook is removed and every submodule's mode
    restored after, on error too. A grid that is not a CNN's ``[N, C, h, w]`` (and any grid of
    a transformer) counts only when the spot changes it most where the spot is: so attention
    weights, windows and tokens kept in another order (Hiera's) are not taken for a picture of
    the image. On a square image, only square grids count.
    The answer (or the error when no size runs) is remembered for this model until its set
    of layers changes.
    """
    key = None if image_size is None else image_pair(image_size)
    # The model's lock is held for the whole dry run, so another thread's forward pass cannot
    # fire its hooks (nor is a result computed while racing remembered).
    with model_lock(model):
        signature = hash(tuple(id(module) for module in model.modules()))
        cached = _SURVEYS.get(model)
        if cached is None or cached[0] != signature:
            cached = _SURVEYS[model] = (signature, {})
        if key not in cached[1]:
            try:
                cached[1][key] = _first_size_that_runs(model, dry_run_sizes(model, key))
            except ValueError as error:               # remembered too: trying every size again would be slow
                cached[1][key] = error
        found = cached[1][key]
        if isinstance(found, ValueError):
            raise ValueError(str(found))
        return found


def _first_size_that_runs(model: nn.Module, sizes: List[Tuple[int, int]]) -> Survey:
    failures: List[Tuple[Tuple[int, int], Exception]] = []
    for size in sizes:
        try:
            records, kind, channels = _record_grids(model, size)
        except Exception as error:  # noqa: BLE001 - a size the model does not take fails in any way
            failures.append((size, error))
            continue
        # A CNN's own maps [N, C, h, w] are taken as they are (a random CNN's spot can wander); all
        # other layouts, and every grid of a transformer, must show the spot where it is.
        transformer = bool(records) and records[-1][0].layout.kind != "NCHW"
        doubtful = [(output, ordered) for output, ordered in records if output.layout.kind != "NCHW" or transformer]
        unordered = {id(output.module): output.name for output, ordered in doubtful if not ordered}
        outputs = [output for output, _ in records if id(output.module) not in unordered]
        fixed = bool(failures) or needs_fixed_size(model) or _only_its_own_size(model, size)
        return Survey(outputs, size, fixed, unordered, kind, channels)
    (size, error), tried = failures[0], ", ".join(f"{h}x{w}" for (h, w), _ in failures)
    first = f"{type(error).__name__}: {error}".splitlines()[0][:200]
    raise ValueError(f"could not find target layers for a {type(model).__name__}: a dry run on a blank image "
                     f"failed at every size tried ({tried}); at {size[0]}x{size[1]}: {first}. If the model takes "
                     f"another size, say which: image_size= (for example default_target_layers(model, "
                     f"image_size=40)); or pass target_layers yourself")


def _only_its_own_size(model: nn.Module, size: Tuple[int, int]) -> bool:
    """For a Hugging Face model that ran at its own size: whether it fails at half that size (its ViT
    refuses any other size), run on a copy, so nothing the model does to itself stays."""
    if hf_config(model) is None or size != own_size(model):
        return False
    half = (max(8, size[0] // 2), max(8, size[1] // 2))
    try:
        with eval_copy(model) as running, torch.no_grad():
            running(spotted_pair(model, half)[:1])
    except Exception:  # noqa: BLE001 - a size the model does not take fails in any way
        return True
    return False


def spotted_pair(model: nn.Module, size: Tuple[int, int]) -> torch.Tensor:
    """Two blank images for ``model`` (its channels, dtype and device), the second with a bright square at ``SPOT``."""
    height, width = size
    images = torch.zeros(2, input_channels(model) or 3, height, width, dtype=model_dtype(model),
                         device=model_device(model))
    half_h, half_w = max(1, height // 16), max(1, width // 16)
    top, left = max(0, round(SPOT[0] * height) - half_h), max(0, round(SPOT[1] * width) - half_w)
    images[1, :, top:top + 2 * half_h, left:left + 2 * half_w] = 1.0
    return images


def _record_grids(model: nn.Module, size: Tuple[int, int]) -> Tuple[List[Tuple[LayerOutput, bool]], str, int]:
    """Each grid the model makes from ``spotted_pair``, and whether it shows the spot where it is; the kind
    of the model's output (``helpers.targets.output_kind``) and, for a score per pixel, its channels."""
    prefix = prefix_tokens(model)
    names = {module: name for name, module in model.named_modules() if name}
    records: List[Tuple[LayerOutput, bool]] = []

    def hook(module: nn.Module, copied: nn.Module, inputs, output) -> None:
        if isinstance(module, PASS_THROUGH) or type(module).__name__ in PASS_THROUGH_NAMES:
            return
        if not isinstance(output, torch.Tensor) or output.dim() not in (3, 4) or output.shape[0] != 2:
            return                                    # not a grid, or windows folded into the batch (Swin)
        layout = infer_layout(tuple(output.shape), size, prefix)
        if layout is None or layout.grid[0] * layout.grid[1] == 1:
            return
        if size[0] == size[1] and layout.grid[0] != layout.grid[1]:
            return                                    # a square image makes square grids (not MaxViT's windows)
        path, shape = names[module], (1,) + tuple(output.shape[1:])
        records.append((LayerOutput(display_name(path), module, shape, layout, path), _shows_spot(output, layout)))

    images = spotted_pair(model, size)
    with eval_copy(model) as running:                  # the model itself is never hooked nor switched
        handles = [running.of(module).register_forward_hook(functools.partial(hook, module))
                   for module in names if running.of(module) is not None]
        try:
            with torch.no_grad():
                output = running(images)
        finally:
            for handle in handles:
                handle.remove()
    kind = output_kind(output)
    dense = main_tensor(output) if kind == "dense" else None
    return records, kind, int(dense.shape[1]) if dense is not None else 0


def _shows_spot(output: torch.Tensor, layout: Layout) -> bool:
    """Whether the spot changes this grid most where the spot is (give or take an eighth of the grid)."""
    grid = to_feature_map(output.detach().float(), layout)
    change = (grid[1] - grid[0]).norm(dim=0)
    if not bool(change.max() > 0):
        return False                                  # the image does not reach this output
    height, width = change.shape
    row, column = divmod(int(change.argmax()), width)
    slack = max(1, round(min(height, width) / 8))
    return abs(row - int(SPOT[0] * height)) <= slack and abs(column - int(SPOT[1] * width)) <= slack


def taken_size(model: nn.Module) -> Optional[Tuple[Tuple[int, int], bool]]:
    """(the size the dry run ran at, whether the model takes only that one); None when no size ran."""
    try:
        found = dry_run(model)
    except ValueError:
        return None
    return found.size, found.fixed


def unordered_layer(model: nn.Module, layer: nn.Module) -> Optional[str]:
    """The name of ``layer`` when the dry run found its grid out of row order (Hiera), else None."""
    try:
        return dry_run(model).unordered.get(id(layer))
    except ValueError:
        return None


def _reaching(model: nn.Module, outputs: List[LayerOutput], size: Tuple[int, int]) -> set:
    """The layers (by ``id``) among ``outputs`` whose patch tokens the class scores depend on.

    One forward pass with gradients, of a noise image, and one gradient of the scores with
    respect to each layer's first output; the model's own gradients are not touched.
    """
    wanted = {id(output.module): output for output in outputs}
    kept: Dict[int, torch.Tensor] = {}

    def hook(module: nn.Module, copied: nn.Module, inputs, output) -> None:
        if id(module) not in kept and isinstance(output, torch.Tensor) and output.requires_grad:
            kept[id(module)] = output

    with eval_copy(model) as running:                # the model itself is never hooked nor switched
        modules = {id(o.module): o.module for o in outputs}.values()
        handles = [running.of(module).register_forward_hook(functools.partial(hook, module))
                   for module in modules if running.of(module) is not None]
        try:
            with torch.inference_mode(False), torch.enable_grad():
                image = torch.randn(1, input_channels(model) or 3, *size, generator=torch.Generator().manual_seed(0))
                image = image.to(device=model_device(model), dtype=model_dtype(model)).requires_grad_(True)
                scores = _all_scores(running(image))
                gradients = torch.autograd.grad(scores.sum(), list(kept.values()), allow_unused=True) if kept else []
        finally:
            for handle in handles:
                handle.remove()
    return {key for key, gradient in zip(kept, gradients)
            if gradient is not None and bool(gradient[:, wanted[key].layout.prefix:].abs().max() > 0)}


def _all_scores(output: object) -> torch.Tensor:
    """What a model's output is about (its class scores, its ``pooler_output``...: ``main_tensor``), or
    else every number it holds, each tensor summed."""
    main = main_tensor(output)
    if main is not None and main.requires_grad:
        return main
    try:
        return class_scores(output)
    except ValueError:
        tensors = [t for t in _flat_tensors(output) if t.is_floating_point() and t.requires_grad]
        return torch.stack([t.sum() for t in tensors]) if tensors else torch.zeros(1)


def _flat_tensors(output: object) -> List[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    items = list(output.values()) if isinstance(output, Mapping) else list(output) \
        if isinstance(output, (tuple, list)) else list(getattr(output, "__dict__", {}).values())
    return [tensor for item in items for tensor in _flat_tensors(item)]


@dataclass(frozen=True)
class Choice:
    """A target layer picked automatically: the layer, its name, and why it was picked."""

    name: str
    module: nn.Module
    reason: str


def _depth(name: str) -> int:
    return name.count(".") + name.count("[")


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, (nn.LayerNorm, nn.GroupNorm)) or type(module).__name__.endswith("Norm")


def _earlier_blocks(first: LayerOutput, outputs: List[LayerOutput]) -> List[LayerOutput]:
    """The same layer in the blocks before ``first``'s, nearest first: ``blocks[10].norm1``, ``blocks[9].norm1``...

    The block is the last part of the path that ends in a number for which such layers exist
    (``blocks.11``, torchvision's ``encoder_layer_11``).
    """
    by_path = {output.path: output for output in outputs}
    parts = first.path.split(".")
    for index in range(len(parts) - 1, -1, -1):
        match = re.fullmatch(r"(.*?)(\d+)", parts[index])
        if match is None:
            continue
        stem, number = match.group(1), int(match.group(2))
        paths = [".".join(parts[:index] + [f"{stem}{k}"] + parts[index + 1:]) for k in range(number - 1, -1, -1)]
        found = [by_path[path] for path in paths if path in by_path]
        if found:
            return found
    return []


def _class_token_choices(model: nn.Module, found: Survey, limit: int) -> List[Choice]:
    """For a transformer whose last tokens reach the score only through its class token: the last
    layer whose patch tokens still reach it (a norm where there is one), and the same in earlier blocks.

    Empty when the model's last tokens reach the score themselves (it pools them), or nothing does.
    """
    last = found.outputs[-1]
    if last.layout.kind != "tokens":
        return []
    same = [output for output in found.outputs if output.layout.kind == "tokens" and output.shape == last.shape]
    reaching = _reaching(model, same, found.size)
    if not reaching or id(last.module) in reaching:
        return []
    candidates = [output for output in same if id(output.module) in reaching]
    outermost = min(_depth(output.name) for output in candidates)
    first = ([o for o in candidates if _is_norm(o.module)] or [o for o in candidates if _depth(o.name) == outermost])[-1]
    reason = (f"{first.name}: the last layer whose patch tokens still reach the class score ({last.shape[1]} tokens, "
              f"{first.layout.describe()}). After it the score depends on the image only through the class "
              f"token, so GradCAM at a later layer is blank.")
    return [Choice(first.name, first.module, reason)] + \
        [Choice(o.name, o.module, "") for o in _earlier_blocks(first, found.outputs)[:limit - 1]]


def _grid_choices(model: nn.Module, found: Survey, limit: int) -> List[Choice]:
    """For each grid size, coarsest first, the outermost layer of that size, the last to finish.

    For a model that gives a score per pixel, the layers at its end that already give those
    scores (as many channels as the output, after every other grid) are left out: GradCAM there
    would explain the scores with themselves.
    """
    outputs = list(found.outputs)
    if found.output == "dense":
        while len(outputs) > 1 and _channels(outputs[-1]) == found.output_channels:
            outputs.pop()
    by_grid: Dict[Tuple[int, int], LayerOutput] = {}
    for output in outputs:                          # in finishing order: a later one of equal depth wins
        best = by_grid.get(output.layout.grid)
        if best is None or _depth(output.name) <= _depth(best.name):
            by_grid[output.layout.grid] = output
    ordered = sorted(by_grid.values(), key=lambda o: o.layout.grid[0] * o.layout.grid[1])
    first = ordered[0]
    (height, width), (rows, columns) = found.size, first.layout.grid
    step = height // rows
    channels = _channels(first)
    scale = f"{rows}x{columns} for its {height}x{width} input" if found.fixed else \
        f"{224 // step}x{224 // step} for a 224 px image"
    layout = "" if first.layout.kind == "NCHW" else \
        f" Its output is {first.layout.describe()}; GradCAM turns it into [N, C, h, w] automatically."
    after = "After it the model pools the grid away, so this is the last layer that says where." \
        if found.output == "scores" else "It is the model's coarsest grid (its output is not class scores: " \
        "explain it with a target)."
    reason = (f"{first.name}: the last layer whose output is a spatial feature map: {channels} channels on a "
              f"grid with one position per {step} pixels ({scale}). {after}{layout}")
    return [Choice(first.name, first.module, reason)] + [Choice(o.name, o.module, "") for o in ordered[1:limit]]


def _channels(output: LayerOutput) -> int:
    return int(output.shape[1] if output.layout.kind == "NCHW" else output.shape[-1])


def _dense_torchvision(model: nn.Module) -> Optional[str]:
    """"detection" or "segmentation" for torchvision's detectors and segmentation models, else None."""
    module = type(model).__module__
    for kind in ("detection", "segmentation"):
        if module.startswith(f"torchvision.models.{kind}."):
            return kind
    return None


def backbone_choices(model: nn.Module, limit: int = 4) -> List[Choice]:
    """The last stages of ``model.backbone`` (``backbone.body`` behind a feature pyramid), coarse to fine:
    the target layers of a detector or a segmentation model (torchvision's, or any with a ``backbone``)."""
    backbone = model.backbone
    body = getattr(backbone, "body", None)
    path, stages = ("backbone.body", body) if isinstance(body, nn.Module) else ("backbone", backbone)
    convolutional = [(name, child) for name, child in stages.named_children()
                     if any(isinstance(m, nn.modules.conv._ConvNd) for m in child.modules())]
    if not convolutional:
        raise ValueError(f"no convolutional stage found in model.{path}; pass target_layers yourself")
    keyed = isinstance(stages, nn.ModuleDict)            # IntermediateLayerGetter: body["16"], not body[16]
    chosen = [(f'{path}["{name}"]' if keyed and name.isdigit() else display_name(f"{path}.{name}"), child)
              for name, child in convolutional[::-1][:limit]]
    pyramid = " through its feature pyramid (model.backbone.fpn)" if path == "backbone.body" else ""
    earlier = f" The stages before it ({', '.join(name for name, _ in chosen[1:])}) have grids as fine or finer." \
        if len(chosen) > 1 else ""
    reason = (f"{chosen[0][0]}: the last stage of the model's backbone, its coarsest feature map, which the model's "
              f"heads read{pyramid}. The layers after it turn features into the model's output (boxes and scores, "
              f"or a score per pixel); at the last of them GradCAM would explain the output with itself.{earlier}")
    return [Choice(name, module, reason if i == 0 else "") for i, (name, module) in enumerate(chosen)]


def surveyed_choices(model: nn.Module, limit: int = 4, image_size: Optional[object] = None) -> List[Choice]:
    """Candidate target layers of any classifier, from its dry run, coarse (deep) to fine (shallow).

    - Transformers whose last tokens reach the score only through a class token: the last
      layer whose patch tokens still reach it, found with one gradient (``blocks[-1].norm1``
      in timm's ViT, ``encoder.layers[-1].ln_1`` in torchvision's, whatever the attention's
      class is called), then the same layer in the blocks before.
    - Everything else (CNNs, and transformers that pool their tokens): for each grid size,
      coarsest first, the outermost layer (fewest dots in its name) that outputs a map of that
      size, the last to finish among those: the model's stages (``layer4``, ``features``...).

    At most ``limit``. ``image_size``: the size of the dry run (see ``dry_run``).
    """
    found = dry_run(model, image_size)
    if found.output not in ("scores", "embedding") and isinstance(getattr(model, "backbone", None), nn.Module):
        return backbone_choices(model, limit)
    if not found.outputs:
        raise ValueError(f"no layer of this {type(model).__name__} gives a spatial feature map (a grid of "
                         f"positions) for a {found.size[0]}x{found.size[1]} image; pass target_layers yourself")
    return _class_token_choices(model, found, limit) or _grid_choices(model, found, limit)


# --- the lesson's two models, by name; any other classifier from its dry run ---------------------

def is_resnet(model: nn.Module) -> bool:
    """True for torchvision's ResNets (the lesson's ResNet-50)."""
    from torchvision.models import ResNet       # torchvision loads on first use, not with the helpers

    return isinstance(model, ResNet)


def is_efficientnet(model: nn.Module) -> bool:
    """True for timm's EfficientNets (the lesson's stand-in, EfficientNet-Lite0)."""
    return type(model).__name__ == "EfficientNet" and hasattr(model, "blocks") and hasattr(model, "conv_head")


def target_layer_choices(model: nn.Module, image_size: Optional[object] = None) -> List[Choice]:
    """Candidate target layers from coarse (deep) to fine (shallow); the first is the default.

    ResNets: ``layer4`` to ``layer1``; the stand-in: its last four blocks; any other
    classifier: ``surveyed_choices`` (one dry run, at ``image_size`` when given). A model the
    dry run fails on gets a ``ValueError`` that says so.
    """
    if is_resnet(model):
        channels = [m.out_channels for m in model.layer4.modules() if isinstance(m, nn.Conv2d)][-1]
        reason = (f"layer4: ResNet's last convolutional stage ({channels} feature maps of 7x7 for a "
                  f"224 px image); after it the model averages the grid away, so this is the last place that "
                  f"says where.")
        return [Choice(name, getattr(model, name), reason if name == "layer4" else "")
                for name in ("layer4", "layer3", "layer2", "layer1")]
    if is_efficientnet(model):
        count = len(model.blocks)
        reason = (f"blocks[{count - 1}]: the last block of EfficientNet's convolutional stages (the lesson's "
                  f"choice for the stand-in; only a 1x1 convolution head follows before the pooling).")
        return [Choice(f"blocks[{i}]", model.blocks[i], reason if i == count - 1 else "")
                for i in range(count - 1, max(count - 5, -1), -1)]
    if _dense_torchvision(model) and isinstance(getattr(model, "backbone", None), nn.Module):
        return backbone_choices(model)
    try:
        return surveyed_choices(model, image_size=image_size)
    except ValueError:
        raise
    except Exception as error:  # noqa: BLE001 - the dry run can fail in any way for a non-classifier
        raise ValueError(f"could not find target layers for a {type(model).__name__}: a dry run on a blank "
                         f"image failed ({type(error).__name__}: {error}); pass target_layers yourself") from error
