"""Loading an image as the model wants it (a normalised tensor) and as people want it (RGB).

>>> from helpers import fetch, load_image
>>> input_tensor, rgb_image = load_image(fetch("both.png"))   # doctest: +SKIP
>>> input_tensor.shape, rgb_image.shape                        # doctest: +SKIP
(torch.Size([1, 3, 224, 224]), (224, 224, 3))
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .architectures import input_channels, input_size, needs_fixed_size, taken_size, torchvision_weights
from .downloads import MAX_IMAGE_BYTES, read_url

if TYPE_CHECKING:                                     # pragma: no cover
    from torch import nn

#: ImageNet's per-channel mean and standard deviation (RGB), which torchvision's and timm's
#: ImageNet models were trained with. (grad-cam's preprocess_image defaults to 0.5 and 0.5.)
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

#: The same, as tuples (mean, std), for ``Preprocessing``.
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

#: The longest side an image is scaled to, whatever ``size`` asks.
MAX_SIDE = 1024
#: Images with more pixels than this are refused before they are decoded (decompression bombs).
MAX_PIXELS = 40_000_000

ImageSource = Union[str, "os.PathLike[str]", bytes, bytearray, Image.Image]


def _open(source: ImageSource) -> Tuple[Image.Image, str]:
    """Open ``source`` lazily and return the image with a name for messages."""
    if isinstance(source, Image.Image):
        return source, "the PIL image"
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ValueError("the image bytes are empty")
        return _open_bytes(bytes(source), f"the {len(source)} image bytes")
    if isinstance(source, str) and source.lower().startswith(("http://", "https://")):
        data = read_url(source, max_bytes=MAX_IMAGE_BYTES)
        return _open_bytes(data, source)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"load_image takes a path, an http(s) URL, bytes or a PIL image, "
                        f"not {type(source).__name__}")
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no image file at {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not an image file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes), not an image")
    return _open_bytes(path.read_bytes(), str(path))


def _open_bytes(data: bytes, name: str) -> Tuple[Image.Image, str]:
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as error:
        raise ValueError(f"{name} is not an image that Pillow can read ({len(data)} bytes)") from error
    except Image.DecompressionBombError as error:
        raise ValueError(f"{name} is too large to open safely: {error}") from error
    return image, name


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB; transparent parts become white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        # 16-bit and 32-bit greyscale: scale the actual range to 0..255 before dropping bits.
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(values.max()), 1.0)
        if image.mode in ("I", "F") and values.max() <= 255 and values.min() >= 0:
            top = 255.0
        grey = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def target_size(width: int, height: int, size: int = 224) -> Tuple[int, int]:
    """The (width, height) that :func:`load_image` scales an image to.

    The shorter side becomes ``size``, unless the longer side would then pass
    ``MAX_SIDE`` (1024), in which case the longer side becomes 1024.

    >>> target_size(425, 280)
    (340, 224)
    >>> target_size(4000, 100)
    (1024, 26)
    """
    scale = size / min(width, height)
    if max(width, height) * scale > MAX_SIDE:
        scale = MAX_SIDE / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass(frozen=True)
class Preprocessing:
    """What a model expects: per-channel ``mean`` and ``std``, an image ``size`` (H, W), whether
    it takes only that size (``fixed``: most vision transformers), where this came from, and how
    many ``channels`` its first convolution takes (3 for RGB, 1 for grey)."""

    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    size: Tuple[int, int]
    fixed: bool
    source: str
    channels: int = 3


def preprocessing(model: "nn.Module") -> Preprocessing:
    """The preprocessing ``model`` was trained with, as far as the model itself says.

    - The lesson's models (``model.lesson_name``): ImageNet's mean and std, 224 px, any shape.
    - timm models: timm's data config (``timm.data.resolve_data_config``). Many timm ViTs use
      a mean and std of 0.5, not ImageNet's.
    - torchvision's classifiers: the transforms of the torchvision weights made for that
      architecture (found by its parameter count, the classifier aside): ImageNet's mean and
      std, and their size: 299 px for Inception v3, 300 for EfficientNet-B3, 384 for
      EfficientNet-V2-S, 256 for Swin-V2-T, 224 for most.
    - A wrapped model (``DataParallel``, ``torch.compile``, ``nn.Sequential(model, ...)``, a
      module of your own around a timm or torchvision model): that of the outermost model
      inside that says. Anything else: ImageNet's mean and std at 224 px.
    - A model that takes only one size gets the size its dry run ran at (a CNN of your own
      for 32 px, a ViT built with ``img_size=``); see ``helpers.architectures.dry_run``.
    - A model whose first convolution takes one channel (grey) gets the mean of the three
      means and of the three standard deviations.

    >>> from torchvision.models import inception_v3, resnet18
    >>> preprocessing(resnet18()).mean, preprocessing(inception_v3(init_weights=False)).size  # doctest: +SKIP
    ((0.485, 0.456, 0.406), (299, 299))
    """
    said = next(filter(None, map(_own_preprocessing, model.modules())), None)   # the model first, then what it wraps
    found = said or Preprocessing(*IMAGENET, input_size(model), needs_fixed_size(model),
                                  "ImageNet's (torchvision's weights use it)")
    if not hasattr(model, "lesson_name") and (found.fixed or said is None):
        taken = taken_size(model)                          # one dry run, remembered for the model
        if taken is not None and taken[1]:
            found = replace(found, size=taken[0], fixed=True)
    channels = input_channels(model) or 3
    if channels == 1:
        found = replace(found, mean=(sum(found.mean) / len(found.mean),), std=(sum(found.std) / len(found.std),))
    return replace(found, channels=channels)


def _own_preprocessing(module: "nn.Module") -> Optional[Preprocessing]:
    """What ``module`` itself says about its preprocessing (not what it wraps), or None."""
    if hasattr(module, "lesson_name"):
        return Preprocessing(*IMAGENET, (224, 224), False, f"the lesson's ({module.lesson_name})")
    if getattr(module, "pretrained_cfg", None) and not hasattr(module, "_orig_mod"):
        from timm.data import resolve_data_config

        config = resolve_data_config({}, model=module)
        return Preprocessing(tuple(config["mean"]), tuple(config["std"]), tuple(config["input_size"][1:]),
                             needs_fixed_size(module), "timm's data config")
    weights = torchvision_weights(module)
    if weights is not None:
        transforms = weights.transforms()
        side = int(transforms.crop_size[0])
        return Preprocessing(tuple(transforms.mean), tuple(transforms.std), (side, side), needs_fixed_size(module),
                             f"torchvision's {weights}")
    return None


def load_image(source: ImageSource, size: Optional[int] = None, model: Optional["nn.Module"] = None,
               mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None
               ) -> Tuple[torch.Tensor, np.ndarray]:
    """Load an image for the model, and a copy for our eyes.

    ``source`` is a file path, an http(s) URL, bytes or a PIL image. The image is turned
    upright (EXIF orientation), converted to RGB, and scaled, keeping its shape and cropping
    nothing, so that its shorter side is ``size`` pixels (224 by default; the longer side at
    most 1024).

    ``model=`` follows that model's own preprocessing (see :func:`preprocessing`): its mean
    and std, and its input size. A model that takes only its own size (most vision
    transformers) gets the whole image scaled to exactly that size, as pytorch-grad-cam's
    examples do, so its shape changes a little. Without ``model``: ImageNet's mean and std,
    which is what ResNet-50 and the lesson's stand-in want. A model whose first convolution
    takes one channel gets a grey image (``[1, 1, H, W]``). ``mean`` and ``std`` (one number
    per channel) override the model's: for a model you trained with your own normalisation.

    Returns ``(input_tensor, rgb_image)``:

    - ``input_tensor``: float32, shape ``[1, 3, H, W]`` (``[1, 1, H, W]`` for a grey model),
      normalised with the mean and std;
    - ``rgb_image``: float32, shape ``[H, W, 3]``, values in [0, 1], for showing.

    Raises ``ValueError`` or ``OSError`` (naming the file) for anything that is not a readable image.

    >>> from PIL import Image
    >>> x, rgb = load_image(Image.new("RGB", (448, 300), "red"))
    >>> tuple(x.shape), rgb.shape
    ((1, 3, 224, 335), (224, 335, 3))
    """
    wanted = preprocessing(model) if model is not None else None
    mean, std = _normalisation(wanted, mean, std)
    if size is None:
        size = 224 if wanted is None else min(wanted.size)
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an int of at least 8 pixels, got {size!r}")
    image, name = open_rgb(source)
    new_size = target_size(*image.size, size=size)
    if wanted is not None and wanted.fixed:
        new_size = (wanted.size[1], wanted.size[0])          # (width, height), the whole image
    if new_size != image.size:
        image = image.resize(new_size, Image.Resampling.BICUBIC)
    rgb_image = np.asarray(image, dtype=np.float32) / 255.0
    pixels = rgb_image if len(mean) == 3 else (rgb_image @ LUMINANCE)[:, :, None]
    normalised = (pixels - mean) / std
    input_tensor = torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1)))[None]
    return input_tensor, rgb_image


def open_rgb(source: ImageSource) -> Tuple[Image.Image, str]:
    """``source`` (as for :func:`load_image`) decoded, upright (EXIF orientation) and in 8-bit RGB,
    at its own size; with a name for messages.

    Raises ``ValueError`` or ``OSError`` (naming the file) for anything that is not a readable image.

    >>> open_rgb(Image.new("L", (30, 20)))[0].mode
    'RGB'
    """
    image, name = _open(source)
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ValueError(f"{name} is {width}x{height} pixels, more than the {MAX_PIXELS:,}-pixel "
                         f"limit; make it smaller first")
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
        image = _to_rgb(image)
    except (OSError, SyntaxError, ValueError) as error:  # Pillow raises all three for broken files
        raise OSError(f"{name} could not be read as an image: {error}") from error
    return image, name


#: How Pillow (and ITU-R 601) weighs red, green and blue in a grey image.
LUMINANCE = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _normalisation(wanted: Optional[Preprocessing], mean: Optional[Sequence[float]],
                   std: Optional[Sequence[float]]) -> Tuple[np.ndarray, np.ndarray]:
    """The mean and std ``load_image`` uses, one per channel it makes (3 for RGB, 1 for grey)."""
    channels = 3 if wanted is None else wanted.channels
    if channels not in (1, 3):
        raise ValueError(f"this model takes {channels} channels (its first convolution), but load_image makes "
                         f"RGB (3) or grey (1) images: build the input tensor [1, {channels}, H, W] yourself (gradcam "
                         f"takes it) and use load_image's rgb_image to show the map on")
    chosen = []
    for given, default, name in ((mean, IMAGENET_MEAN if wanted is None else wanted.mean, "mean"),
                                 (std, IMAGENET_STD if wanted is None else wanted.std, "std")):
        values = np.array(default if given is None else given, dtype=np.float32).reshape(-1)
        if len(values) != channels or not np.isfinite(values).all() or (name == "std" and (values <= 0).any()):
            raise ValueError(f"{name} must hold {channels} finite number{'s' if channels > 1 else ''} (one per channel"
                             f"{', more than 0' if name == 'std' else ''}), got {given!r}")
        chosen.append(values)
    return chosen[0], chosen[1]
