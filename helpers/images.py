"""Loading an image as the model wants it (a normalised tensor) and as people want it (RGB).

>>> from helpers import fetch, load_image
>>> input_tensor, rgb_image = load_image(fetch("both.png"))   # doctest: +SKIP
>>> input_tensor.shape, rgb_image.shape                        # doctest: +SKIP
(torch.Size([1, 3, 224, 224]), (224, 224, 3))
"""

from __future__ import annotations

import contextlib
import io
import os
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional, Sequence, Tuple, Union

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


#: Pillow's modes of more than 8 bits per pixel (greyscale): 16-bit and 32-bit integers, 32-bit floats.
HIGH_BIT_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N", "F")


def check_value_range(value_range: object) -> Optional[Tuple[float, float]]:
    """``value_range`` as (low, high) floats with low < high, None as it is, else a clear error."""
    if value_range is None:
        return None
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        low = high = float("nan")
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"value_range must be (low, high), two numbers with low < high: the values shown as black "
                         f"and as white, such as (0, 4095) for 12-bit data; got {value_range!r}")
    return low, high


def scaled_to_unit(values: np.ndarray, mode: str, value_range: Optional[Tuple[float, float]] = None
                   ) -> Tuple[np.ndarray, str]:
    """A high-bit image's values scaled to [0, 1], and a line saying how.

    By the image's actual range (its smallest value becomes 0, its largest 1) unless
    ``value_range`` (low, high) says which values are black and white. So 12-bit data in a 16-bit
    PNG (0..4095) and a float TIFF in [0, 1] are not shown nearly black.

    >>> scaled_to_unit(np.array([[0.0, 2048.0, 4095.0]]), "I;16")[0].round(3).tolist()
    [[0.0, 0.5, 1.0]]
    """
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    found = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    kind = "float" if mode == "F" else "16-bit" if mode.startswith("I;16") else "32-bit integer"
    how = "as you asked (value_range)" if value_range is not None else \
        "its actual range; pass value_range=(low, high) to choose it yourself"
    low, high = value_range if value_range is not None else found
    if high <= low:                  # one value all over: its place in the type's whole range instead
        low, high = 0.0, 1.0 if mode == "F" else 65535.0 if mode.startswith("I;16") or found[1] > 255 else 255.0
        how = "all its values are equal, so by the whole range of its type"
    line = (f"load_image: a {kind} greyscale image (Pillow mode {mode}) with values from {found[0]:.6g} to "
            f"{found[1]:.6g}: scaled from [{low:.6g}, {high:.6g}] to [0, 1] ({how})")
    return np.clip(np.nan_to_num((values - low) / (high - low)), 0.0, 1.0), line


def _to_rgb(image: Image.Image, value_range: Optional[Tuple[float, float]] = None) -> Image.Image:
    """Any Pillow mode to 8-bit RGB; transparent parts become white. A 16-bit, 32-bit or float image is
    scaled by its actual range (or ``value_range``) first, and a line says how."""
    if image.mode in HIGH_BIT_MODES:
        unit, line = scaled_to_unit(np.asarray(image), image.mode, value_range)
        print(line)
        grey = np.clip(unit * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if image.mode == "RGB":
        return image
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
    #: a line load_image prints, where the preprocessing is a guess the model does not confirm
    note: str = ""


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
    - Hugging Face's models: the mean and std of the image processor saved with the model (found
      here, without a download), else of their model type's image processor (ViT's: 0.5 and
      0.5), said in ``note``; their ``config.image_size``.
    - torchvision's detectors normalise inside (``model.transform``): mean 0 and std 1, so the
      pixels stay in [0, 1] and are not normalised twice.

    >>> from torchvision.models import inception_v3, resnet18
    >>> preprocessing(resnet18()).mean, preprocessing(inception_v3(init_weights=False)).size  # doctest: +SKIP
    ((0.485, 0.456, 0.406), (299, 299))
    """
    said = next(filter(None, map(_own_preprocessing, model.modules())), None)   # the model first, then what it wraps
    found = said or Preprocessing(*IMAGENET, input_size(model), needs_fixed_size(model),
                                  "ImageNet's (torchvision's weights use it)")
    if not hasattr(model, "lesson_name") and (found.fixed or said is None or any(map(_is_hugging_face, model.modules()))):
        taken = taken_size(model)                          # one dry run, remembered for the model
        if taken is not None and taken[1]:
            found = replace(found, size=taken[0], fixed=True)
    channels = input_channels(model) or 3
    if channels == 1:
        found = replace(found, mean=(sum(found.mean) / len(found.mean),), std=(sum(found.std) / len(found.std),))
    return replace(found, channels=channels)


def _own_preprocessing(module: "nn.Module") -> Optional[Preprocessing]:
    """What ``module`` itself says about its preprocessing (not what it wraps), or None."""
    detector = getattr(module, "transform", None)
    if hasattr(detector, "image_mean") and hasattr(detector, "image_std"):
        # torchvision's detectors (GeneralizedRCNNTransform) normalise and resize inside: give them [0, 1]
        side = getattr(detector, "min_size", (800,))
        side = int(side[0] if isinstance(side, (tuple, list)) else side)
        return Preprocessing((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (side, side), False,
                             f"the model's own: it normalises inside ({type(detector).__name__}: mean "
                             f"{tuple(detector.image_mean)}, std {tuple(detector.image_std)}), so load_image only "
                             f"scales the pixels to [0, 1]")
    if _is_hugging_face(module):
        return _hugging_face_preprocessing(module)
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


def _is_hugging_face(module: "nn.Module") -> bool:
    return type(module).__module__.startswith("transformers.") and hasattr(getattr(module, "config", None),
                                                                         "model_type")


def _hugging_face_preprocessing(module: "nn.Module") -> Preprocessing:
    """A Hugging Face model's: the image processor saved with it where it can be found here (no
    download), else the defaults of its model type's image processor, said in ``note``."""
    config = module.config
    processor, source = _hugging_face_processor(config)
    own = getattr(config, "image_size", None)
    if isinstance(own, int) or (isinstance(own, (tuple, list)) and len(own) == 2):
        size = (own, own) if isinstance(own, int) else (int(own[0]), int(own[1]))
    else:
        wanted = dict(getattr(processor, "crop_size", None) or getattr(processor, "size", None) or {})
        side = wanted.get("height") or wanted.get("shortest_edge") or 224
        size = (int(side), int(wanted.get("width") or side))
    if processor is None or getattr(processor, "image_mean", None) is None:
        return Preprocessing(*IMAGENET, size, False, "ImageNet's (assumed)",
                             note=f"load_image: no image processor found for Hugging Face's model type "
                                  f"{config.model_type!r}, so ImageNet's mean and std are assumed; pass mean= and "
                                  f"std= if your model's preprocessor_config.json says otherwise")
    mean, std = tuple(float(v) for v in processor.image_mean), tuple(float(v) for v in processor.image_std)
    note = "" if source.startswith("the image processor saved") else \
        (f"load_image: mean {_short(mean)} and std {_short(std)} from {source}; pass mean= and std= if your "
         f"model's preprocessor_config.json says otherwise")
    return Preprocessing(mean, std, size, False, source, note=note)


def _short(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.3g}" for v in values) + ")"


def _hugging_face_processor(config) -> Tuple[object, str]:
    """(an image processor, where it came from) for a Hugging Face config; (None, "") where none is found."""
    name = getattr(config, "_name_or_path", "") or ""
    try:
        from transformers import AutoImageProcessor
        from transformers.models.auto import image_processing_auto
    except ImportError:                                    # pragma: no cover - the model came from transformers
        return None, ""
    if name:
        try:
            return AutoImageProcessor.from_pretrained(name, local_files_only=True), \
                f"the image processor saved with {name}"
        except Exception:  # noqa: BLE001 - not saved, not cached: use the model type's defaults
            pass
    entry = image_processing_auto.IMAGE_PROCESSOR_MAPPING_NAMES.get(config.model_type)
    if isinstance(entry, dict):
        entry = entry.get("pil") or entry.get("torchvision") or next(iter(entry.values()), None)
    elif isinstance(entry, (tuple, list)):
        entry = next((item for item in entry if item), None)
    try:
        processor = image_processing_auto.get_image_processor_class_from_name(entry)() if entry else None
    except Exception:  # noqa: BLE001 - a processor that needs an extra package
        processor = None
    if processor is None:
        return None, ""
    return processor, (f"{type(processor).__name__}'s defaults for Hugging Face's model type {config.model_type!r} "
                       f"(no image processor saved with this model was found here)")


#: The notes already printed, per model: said once, not at every image.
_SAID: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def load_image(source: ImageSource, size: Optional[int] = None, model: Optional["nn.Module"] = None,
               mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None,
               value_range: Optional[Tuple[float, float]] = None) -> Tuple[torch.Tensor, np.ndarray]:
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

    A 16-bit or float image (microscopy, X-ray, a float TIFF) is scaled by its actual range, its
    smallest value to 0 and its largest to 1, and a line says so; ``value_range=(low, high)`` says
    which values are black and white instead (``(0, 4095)`` for 12-bit data), for any image.
    A Hugging Face model's mean and std come from its image processor, and a detector that
    normalises inside (torchvision's) gets pixels in [0, 1]; a line says where a guess was made.

    Raises ``ValueError`` or ``OSError`` (naming the file) for anything that is not a readable image.

    >>> from PIL import Image
    >>> x, rgb = load_image(Image.new("RGB", (448, 300), "red"))
    >>> tuple(x.shape), rgb.shape
    ((1, 3, 224, 335), (224, 335, 3))
    """
    wanted = preprocessing(model) if model is not None else None
    if wanted is not None and wanted.note and mean is None and std is None and model not in _SAID:
        print(wanted.note)
        _SAID[model] = True
    mean, std = _normalisation(wanted, mean, std)
    value_range = check_value_range(value_range)
    if size is None:
        size = 224 if wanted is None else min(wanted.size)
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an int of at least 8 pixels, got {size!r}")
    image, name = _decoded(source)
    high_bit = image.mode in HIGH_BIT_MODES
    with _unreadable(name):
        image = _to_rgb(image, value_range)
    new_size = target_size(*image.size, size=size)
    if wanted is not None and wanted.fixed:
        new_size = (wanted.size[1], wanted.size[0])          # (width, height), the whole image
    if new_size != image.size:
        image = image.resize(new_size, Image.Resampling.BICUBIC)
    rgb_image = np.asarray(image, dtype=np.float32) / 255.0
    if value_range is not None and not high_bit:               # an 8-bit image: its 0..255 values
        rgb_image = np.clip((rgb_image * 255.0 - value_range[0]) / (value_range[1] - value_range[0]), 0, 1)
        rgb_image = rgb_image.astype(np.float32)
    pixels = rgb_image if len(mean) == 3 else (rgb_image @ LUMINANCE)[:, :, None]
    normalised = (pixels - mean) / std
    input_tensor = torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1)))[None]
    return input_tensor, rgb_image


def open_rgb(source: ImageSource) -> Tuple[Image.Image, str]:
    """``source`` (as for :func:`load_image`) decoded, upright (EXIF orientation) and in 8-bit RGB, at
    its own size; with a name for messages. What ``helpers.audit`` reads each file with.

    Raises ``ValueError`` or ``OSError`` (naming the file) for anything that is not a readable image.

    >>> open_rgb(Image.new("L", (30, 20)))[0].mode
    'RGB'
    """
    image, name = _decoded(source)
    with _unreadable(name), contextlib.redirect_stdout(io.StringIO()):   # no line per 16-bit image
        return _to_rgb(image), name


def _decoded(source: ImageSource) -> Tuple[Image.Image, str]:
    """``source`` opened, within ``MAX_PIXELS``, decoded and upright (EXIF orientation), with its name."""
    image, name = _open(source)
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ValueError(f"{name} is {width}x{height} pixels, more than the {MAX_PIXELS:,}-pixel "
                         f"limit; make it smaller first")
    with _unreadable(name):
        image.load()
        return ImageOps.exif_transpose(image), name


@contextlib.contextmanager
def _unreadable(name: str) -> Iterator[None]:
    """Pillow's errors for a broken file (it raises OSError, SyntaxError and ValueError) as one OSError."""
    try:
        yield
    except (OSError, SyntaxError, ValueError) as error:
        raise OSError(f"{name} could not be read as an image: {error}") from error


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
