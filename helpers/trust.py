"""Can an explanation be trusted? Other saliency methods, and two tests of any of them.

- ``saliency``: the vanilla gradient map (Simonyan et al., 2013), by hand;
- ``guided_backprop``: guided backpropagation (Springenberg et al., 2015), for ReLU and ReLU6;
- ``edge_map``: a Sobel edge detector, which looks at the image and ignores the model;
- ``randomised_models``: the model with its layers re-initialised from the top down, after
  Adebayo et al. (2018), "Sanity Checks for Saliency Maps";
- ``spearman``: rank correlation between two maps;
- ``deletion_curve`` / ``insertion_curve``: faithfulness after Petsiuk et al. (2018);
- ``explain_images``: one batched GradCAM pass over many images, for a contact sheet.

>>> import numpy as np
>>> spearman(np.arange(9.0).reshape(3, 3), np.arange(9.0).reshape(3, 3) ** 2)
1.0
"""

from __future__ import annotations

import copy
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .cam import check_input, compute_cams, eval_mode, model_device
from .labels import check_class_id


# --- pixel-level maps -----------------------------------------------------------------------

def saliency(model: nn.Module, class_id: int, input_tensor: torch.Tensor) -> np.ndarray:
    """The vanilla gradient map: |d score / d pixel|, the largest over the colour channels.

    Returns float32 ``[H, W]`` scaled to [0, 1].
    """
    check_class_id(class_id)
    x = check_input(input_tensor).detach().to(model_device(model)).clone().requires_grad_(True)
    with eval_mode(model), torch.enable_grad():
        score = model(x)[0, int(class_id)]
        gradient, = torch.autograd.grad(score, x)
    return _unit(gradient[0].abs().amax(dim=0))


class _GuidedClamp(torch.autograd.Function):
    """clamp(x, 0, upper) forward; backward passes only positive gradients where x was active."""

    @staticmethod
    def forward(ctx, x, upper):
        ctx.save_for_backward(x)
        ctx.upper = upper
        return x.clamp(0, upper)

    @staticmethod
    def backward(ctx, grad):
        x, = ctx.saved_tensors
        keep = (x > 0) & (x < ctx.upper) & (grad > 0)
        return grad * keep, None


class GuidedActivation(nn.Module):
    """A ReLU (``upper=inf``) or ReLU6 (``upper=6``) with guided backpropagation's backward."""

    def __init__(self, upper: float = float("inf")) -> None:
        super().__init__()
        self.upper = upper

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _GuidedClamp.apply(x, self.upper)


def guided_model(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose ReLU and ReLU6 modules do guided backpropagation.

    Stock guided-backprop code swaps only ``nn.ReLU``; the stand-in model uses ``nn.ReLU6``.
    """
    guided = copy.deepcopy(model)
    replaced = 0
    for parent in list(guided.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU6):
                setattr(parent, name, GuidedActivation(6.0))
                replaced += 1
            elif isinstance(child, nn.ReLU):
                setattr(parent, name, GuidedActivation())
                replaced += 1
    if not replaced:
        raise ValueError("the model has no nn.ReLU or nn.ReLU6 modules for guided backpropagation to change")
    return guided.eval()


def guided_backprop(model: nn.Module, class_id: int, input_tensor: torch.Tensor,
                    guided: Optional[nn.Module] = None) -> np.ndarray:
    """Guided backpropagation's map: float32 ``[H, W]`` in [0, 1]. Pass ``guided`` to reuse a copy."""
    return saliency(guided if guided is not None else guided_model(model), class_id, input_tensor)


def edge_map(rgb_image: np.ndarray) -> np.ndarray:
    """Sobel edge strength of the image, in [0, 1]: a "saliency map" that never looks at a model."""
    grey = torch.from_numpy(np.asarray(rgb_image, dtype=np.float32).mean(axis=2))[None, None]
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])[None, None]
    gx = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kx)
    gy = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kx.transpose(2, 3))
    return _unit(torch.sqrt(gx ** 2 + gy ** 2)[0, 0])


def _unit(values: torch.Tensor) -> np.ndarray:
    values = values.detach().float()
    values = values - values.min()
    return (values / (values.max() + 1e-12)).cpu().numpy().astype(np.float32)


# --- the sanity check: randomise the model from the top down --------------------------------

def random_like(model: nn.Module, seed: int) -> nn.Module:
    """A model of the same architecture with fresh random weights (``weights=None``), in eval mode."""
    name = getattr(model, "lesson_name", "")
    torch.manual_seed(seed)
    if name.startswith("resnet50"):
        from torchvision.models import resnet50

        fresh = resnet50(weights=None)
    elif name == "efficientnet_lite0":
        import timm

        fresh = timm.create_model("efficientnet_lite0", pretrained=False)
    else:
        fresh = copy.deepcopy(model)
        for module in fresh.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    fresh.lesson_name = name
    return fresh.to(model_device(model)).eval()


def cascade_stages(model: nn.Module) -> List[Tuple[str, List[str]]]:
    """The model's stages from the output down, each as (label, [module names])."""
    from .models import _is_efficientnet, _is_resnet

    if _is_resnet(model):
        return [("fc", ["fc"]), ("layer4", ["layer4"]), ("layer3", ["layer3"]), ("layer2", ["layer2"]),
                ("layer1", ["layer1"]), ("conv1", ["conv1", "bn1"])]
    if _is_efficientnet(model):
        blocks = [(f"blocks[{i}]", [f"blocks.{i}"]) for i in range(len(model.blocks) - 1, -1, -1)]
        return [("classifier", ["classifier"]), ("conv_head", ["conv_head", "bn2"])] + blocks + \
               [("conv_stem", ["conv_stem", "bn1"])]
    raise ValueError(f"no known stages for a {type(model).__name__}")


def randomised_models(model: nn.Module, seed: int, stages: Optional[int] = None
                      ) -> Iterator[Tuple[str, nn.Module]]:
    """Yield (label, model) with 1, 2, ... stages re-initialised, from the top down (a cascade).

    The randomised weights come from a fresh model of the same architecture, built with
    ``weights=None``, so nothing is downloaded. ``model`` itself is never changed.
    """
    fresh = random_like(model, seed)
    current = copy.deepcopy(model).eval()
    fresh_modules = dict(fresh.named_modules())
    done = []
    for label, names in cascade_stages(model)[:stages]:
        for name in names:
            current.get_submodule(name).load_state_dict(fresh_modules[name].state_dict())
        done.append(label)
        yield "+".join(done) if len(done) <= 3 else f"{done[0]} ... {done[-1]}", current


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two maps (NaN when either is constant)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def randomisation_check(model: nn.Module, target_layers_of, class_ids: Sequence[int],
                        input_tensor: torch.Tensor, seeds: Sequence[int] = range(5), stages: int = 3,
                        method: str = "GradCAM", progress: bool = True) -> Dict[str, object]:
    """Mean Spearman correlation between GradCAM before and after re-initialising the top ``stages``.

    ``target_layers_of(model)`` names the target layers of a model (``default_target_layers``).
    Maps that come out constant (nothing positive) have no rank correlation: they are counted
    in ``constant`` and left out of the mean, never dropped silently.
    """
    from tqdm.auto import tqdm

    before, _ = compute_cams(model, target_layers_of(model), list(class_ids),
                             input_tensor.expand(len(class_ids), -1, -1, -1), method)
    correlations, constant = [], 0
    for seed in tqdm(list(seeds), desc="randomised models", disable=not progress):
        *_, (label, randomised) = randomised_models(model, seed, stages)
        after, _ = compute_cams(randomised, target_layers_of(randomised), list(class_ids),
                                input_tensor.expand(len(class_ids), -1, -1, -1), method)
        for b, a in zip(before, after):
            rho = spearman(b, a)
            if np.isnan(rho):
                constant += 1
            else:
                correlations.append(rho)
    return {"stages": label, "mean": float(np.mean(correlations)) if correlations else float("nan"),
            "correlations": correlations, "constant": constant, "pairs": len(seeds) * len(class_ids)}


# --- faithfulness: delete or insert the most important pixels first --------------------------

def _blurred(input_tensor: torch.Tensor) -> torch.Tensor:
    small = F.interpolate(input_tensor, scale_factor=1 / 16, mode="bilinear", align_corners=False)
    return F.interpolate(small, size=input_tensor.shape[-2:], mode="bilinear", align_corners=False)


def _curve(model: nn.Module, input_tensor: torch.Tensor, class_id: int, heatmap: np.ndarray, steps: int,
           insert: bool) -> np.ndarray:
    check_class_id(class_id)
    x = check_input(input_tensor).detach()
    order = torch.argsort(torch.from_numpy(np.ascontiguousarray(heatmap)).flatten(), descending=True)
    n = order.numel()
    blurred = _blurred(x)
    frames = []
    for step in range(steps + 1):
        mask = torch.zeros(n)
        mask[order[: round(n * step / steps)]] = 1.0
        mask = mask.reshape(1, 1, *x.shape[-2:])
        frames.append(blurred * (1 - mask) + x * mask if insert else x * (1 - mask) + blurred * mask)
    with eval_mode(model), torch.no_grad():
        probabilities = torch.softmax(model(torch.cat(frames).to(model_device(model))), dim=1)
    return probabilities[:, int(class_id)].cpu().numpy()


def deletion_curve(model: nn.Module, input_tensor: torch.Tensor, class_id: int, heatmap: np.ndarray,
                   steps: int = 16) -> np.ndarray:
    """The class probability as the most important pixels (by ``heatmap``) are blurred away.

    ``steps + 1`` values, from the intact image to a fully blurred one; a faithful map makes
    it fall fast (a small area under the curve). One batched forward pass.
    """
    return _curve(model, input_tensor, class_id, heatmap, steps, insert=False)


def insertion_curve(model: nn.Module, input_tensor: torch.Tensor, class_id: int, heatmap: np.ndarray,
                    steps: int = 16) -> np.ndarray:
    """The class probability as the most important pixels are put back into a blurred image.

    A faithful map makes it rise fast (a large area under the curve).
    """
    return _curve(model, input_tensor, class_id, heatmap, steps, insert=True)


def area_under(curve: np.ndarray) -> float:
    """Area under a curve sampled evenly on [0, 1] (trapezoids)."""
    curve = np.asarray(curve, dtype=np.float64)
    return float(((curve[1:] + curve[:-1]) / 2).mean())


# --- many images at once ---------------------------------------------------------------------

def explain_images(model: nn.Module, target_layers: Sequence[nn.Module], images: Sequence[Tuple[torch.Tensor, np.ndarray]],
                   size: int = 224) -> List[Dict[str, object]]:
    """GradCAM of the predicted class for many images, in one batched pass.

    Each image is cut to its centre ``size`` × ``size`` square (as ImageNet's evaluation does),
    so that all fit in one batch. Returns, per image: the square ``rgb``, ``class_id``,
    ``probability`` and ``heatmap``.
    """
    tensors, pictures = [], []
    for input_tensor, rgb_image in images:
        height, width = input_tensor.shape[-2:]
        if min(height, width) < size:
            raise ValueError(f"an image of {width}x{height} is smaller than the {size}-pixel square")
        top, left = (height - size) // 2, (width - size) // 2
        tensors.append(input_tensor[..., top:top + size, left:left + size])
        pictures.append(rgb_image[top:top + size, left:left + size])
    maps, logits = compute_cams(model, target_layers, [None] * len(tensors), torch.cat(tensors))
    probabilities = torch.softmax(logits, dim=1)
    return [{"rgb": picture, "class_id": int(p.argmax()), "probability": float(p.max()), "heatmap": heatmap}
            for picture, p, heatmap in zip(pictures, probabilities, maps)]
