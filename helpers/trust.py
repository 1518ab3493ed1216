"""Can an explanation be trusted? Other saliency methods, and two tests of any of them.

- ``saliency``: the vanilla gradient map (Simonyan et al., 2013), by hand;
- ``score_along_path``: a class's logit from a baseline to the image (where Integrated Gradients integrates);
- ``guided_backprop``: guided backpropagation (Springenberg et al., 2015), for ReLU and ReLU6;
- ``edge_map``: a Sobel edge detector, which looks at the image and ignores the model;
- ``randomised_models``: the model with its layers re-initialised from the top down, after
  Adebayo et al. (2018), "Sanity Checks for Saliency Maps" (``randomised_model``: only the last step);
- ``spearman``: rank correlation between two maps;
- ``deletion_curve`` / ``insertion_curve``: faithfulness after Petsiuk et al. (2018);
- ``explain_images``: one batched GradCAM pass over many images, for a contact sheet.

>>> import numpy as np
>>> spearman(np.arange(9.0).reshape(3, 3), np.arange(9.0).reshape(3, 3) ** 2)
1.0
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .architectures import is_efficientnet, is_resnet
from .cam import (GRADIENT_FREE, _method, check_input, check_target_layers, class_gradients, compute_cams,
                  forward_with_activations, maps_to_image, model_input, shown_name)
from .labels import check_class_id
from .modelstate import eval_copy, model_device, model_lock, shared_twin, unwrap
from .targets import class_scores


# --- pixel-level maps -----------------------------------------------------------------------

def saliency(model: nn.Module, class_id: int, input_tensor: torch.Tensor) -> np.ndarray:
    """The vanilla gradient map: |d score / d pixel|, the largest over the colour channels.

    Returns float32 ``[H, W]`` scaled to [0, 1].
    """
    return _pixel_gradient(model, class_id, input_tensor, guided=False)


def _pixel_gradient(model: nn.Module, class_id: int, input_tensor: torch.Tensor, guided: bool) -> np.ndarray:
    """|d score / d pixel| (the largest over the channels) on an eval-mode copy of ``model``; with
    ``guided``, the copy's ReLU and ReLU6 modules backpropagate as guided backpropagation does (the
    hooks go on the copy's modules only: the caller's model, and another thread using it, see nothing)."""
    x = model_input(model, input_tensor).requires_grad_(True)      # the model's dtype, not an inference tensor
    with eval_copy(model) as running, torch.inference_mode(False), torch.enable_grad():
        if guided:
            for module, upper in _activations(running.module):
                module.register_forward_hook(
                    lambda _module, _inputs, output, upper=upper: _GuidedClamp.apply(output, upper))
        scores = class_scores(running(x))
        class_id = check_class_id(class_id, scores.shape[1])        # the model's own class count
        gradient, = torch.autograd.grad(scores[0, class_id], x)
    return _unit(gradient[0].abs().amax(dim=0))


def score_along_path(model: nn.Module, class_id: int, input_tensor: torch.Tensor,
                     baseline: Optional[torch.Tensor] = None, steps: int = 10) -> Tuple[np.ndarray, np.ndarray]:
    """The class's score (logit) on the straight path from ``baseline`` to the image: Integrated Gradients' path.

    Returns ``(fractions, logits)``: ``steps + 1`` fractions from 0 (the baseline; by default
    zeros of the normalised tensor, as Captum's default, which is ImageNet's mean colour, not
    black) to 1 (the image), and the
    logit at each. *Saturation* shows as a flat stretch: there the score stops changing, so
    the gradient is small, whatever the pixels' part in getting there. One batched pass.

    >>> fractions, logits = score_along_path(model, 243, input_tensor)     # doctest: +SKIP
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a whole number of at least 1 (10 is usual), got {steps!r}")
    x = model_input(model, input_tensor)
    start = torch.zeros_like(x) if baseline is None else model_input(model, baseline)
    fractions = torch.linspace(0, 1, steps + 1, device=x.device, dtype=x.dtype)
    with eval_copy(model) as running, torch.no_grad():
        path = torch.cat([start + f * (x - start) for f in fractions])
        logits = torch.cat([class_scores(running(path[i:i + BATCH])) for i in range(0, len(path), BATCH)])
    class_id = check_class_id(class_id, logits.shape[1])            # the model's own class count
    return fractions.cpu().numpy().astype(np.float32), logits[:, class_id].float().cpu().numpy()


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


def _activations(model: nn.Module) -> List[Tuple[nn.Module, float]]:
    """The model's ReLU and ReLU6 modules, each with its upper bound (ReLU6: 6)."""
    found = [(module, 6.0 if isinstance(module, nn.ReLU6) else float("inf"))
             for module in model.modules() if isinstance(module, (nn.ReLU, nn.ReLU6))]
    if not found:
        raise ValueError("the model has no nn.ReLU or nn.ReLU6 modules for guided backpropagation to change")
    return found


def guided_model(model: nn.Module) -> nn.Module:
    """A twin of ``model`` whose ReLU and ReLU6 modules do guided backpropagation, in eval mode.

    Stock guided-backprop code swaps only ``nn.ReLU``; the stand-in model uses ``nn.ReLU6``.
    The twin shares the model's weights and buffers (nothing of them is copied) but has modules
    of its own, so its mode and activations do not touch ``model``. ``guided_backprop`` needs no
    twin: it changes the backward only for the length of the call.
    """
    unwrapped = unwrap(model)
    _activations(unwrapped)                           # a clear error before anything is built
    guided = shared_twin(unwrapped)
    for parent in list(guided.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, (nn.ReLU, nn.ReLU6)):
                replacement = GuidedActivation(6.0 if isinstance(child, nn.ReLU6) else float("inf"))
                for key, value in child.__dict__.items():      # the caller's hooks on it stay
                    if "hooks" in key and isinstance(value, dict):
                        replacement.__dict__[key] = OrderedDict(value)
                setattr(parent, name, replacement)
    return guided.eval()


def guided_backprop(model: nn.Module, class_id: int, input_tensor: torch.Tensor,
                    guided: Optional[nn.Module] = None) -> np.ndarray:
    """Guided backpropagation's map: float32 ``[H, W]`` in [0, 1].

    One forward and one backward pass of an eval-mode copy of ``model`` that shares its weights,
    with the copy's ReLU and ReLU6 modules guided; the model itself is never hooked, so it is
    left as it was, and another thread that runs it meanwhile sees nothing. ``guided``: a twin
    from ``guided_model`` to use instead (the same map).

    >>> pixel_map = guided_backprop(model, 245, input_tensor)          # doctest: +SKIP
    """
    with torch.inference_mode(False):            # a graph, even inside torch.inference_mode()
        if guided is not None:
            if not isinstance(guided, nn.Module) or not any(isinstance(m, GuidedActivation) for m in guided.modules()):
                raise TypeError(f"guided must be a twin made by guided_model(model), got {type(guided).__name__}; "
                                f"leave it out to guide an eval-mode copy of the model for this call")
            return saliency(guided, class_id, input_tensor)
        _activations(unwrap(model))              # a clear error for a model without ReLU/ReLU6 modules
        return _pixel_gradient(model, class_id, input_tensor, guided=True)


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
    with torch.random.fork_rng(devices=[]):          # seeded, without reseeding the caller's generator
        torch.manual_seed(seed)
        if name.startswith("resnet50"):
            from torchvision.models import resnet50

            fresh = resnet50(weights=None)
        elif name == "efficientnet_lite0":
            import timm

            fresh = timm.create_model("efficientnet_lite0", pretrained=False)
        else:
            fresh = None
        shapes = {key: value.shape for key, value in model.state_dict().items()}
        if fresh is not None and {key: value.shape for key, value in fresh.state_dict().items()} != shapes:
            fresh = None                              # a new head (or other change): the architecture differs
        if fresh is None:
            fresh = copy.deepcopy(model)
            for module in fresh.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
    fresh.lesson_name = name
    return fresh.to(model_device(model)).eval()


def cascade_stages(model: nn.Module) -> List[Tuple[str, List[str]]]:
    """The model's stages from the output down, each as (label, [module names])."""
    if is_resnet(model):
        return [("fc", ["fc"]), ("layer4", ["layer4"]), ("layer3", ["layer3"]), ("layer2", ["layer2"]),
                ("layer1", ["layer1"]), ("conv1", ["conv1", "bn1"])]
    if is_efficientnet(model):
        blocks = [(f"blocks[{i}]", [f"blocks.{i}"]) for i in range(len(model.blocks) - 1, -1, -1)]
        return [("classifier", ["classifier"]), ("conv_head", ["conv_head", "bn2"])] + blocks + \
               [("conv_stem", ["conv_stem", "bn1"])]
    raise ValueError(f"no known stages for a {type(model).__name__}")


def randomised_models(model: nn.Module, seed: int, stages: Optional[int] = None
                      ) -> Iterator[Tuple[str, nn.Module]]:
    """Yield (label, model) with 1, 2, ... stages re-initialised, from the top down (a cascade).

    The randomised weights come from a fresh model of the same architecture, built with
    ``weights=None``, so nothing is downloaded. ``model`` itself is never changed.

    Each stage is its own model (a snapshot): keeping one does not change when the next is
    made. Each holds a full copy of the weights, so use a stage and let it go rather than
    keeping them all (``list(randomised_models(...))`` keeps them all).
    """
    fresh_state = random_like(model, seed).state_dict()     # only the random weights are kept
    done: List[str] = []
    names_done: List[str] = []
    stage_model: Optional[nn.Module] = None
    for label, names in cascade_stages(model)[:stages]:
        done.append(label)
        names_done += names
        stage_model = None               # the caller's `del` of the last stage frees it before the next copy
        stage_model = copy.deepcopy(model).eval()
        _reinitialise(stage_model, names_done, fresh_state)
        yield _stage_label(done), stage_model


def randomised_model(model: nn.Module, seed: int, stages: int) -> Tuple[str, nn.Module]:
    """Only the last step of the cascade: ``model`` with its top ``stages`` stages re-initialised.

    Same weights as the last stage of ``randomised_models``, without a copy per stage.
    """
    fresh_state = random_like(model, seed).state_dict()
    working = copy.deepcopy(model).eval()
    done = []
    for label, names in cascade_stages(model)[:stages]:
        _reinitialise(working, names, fresh_state)
        done.append(label)
    del fresh_state
    return _stage_label(done), working


def _reinitialise(working: nn.Module, names: Sequence[str], fresh_state: Dict[str, torch.Tensor]) -> None:
    for name in names:
        prefix = f"{name}."
        working.get_submodule(name).load_state_dict(
            {key[len(prefix):]: value for key, value in fresh_state.items() if key.startswith(prefix)})


def _stage_label(done: Sequence[str]) -> str:
    return "+".join(done) if len(done) <= 3 else f"{done[0]} ... {done[-1]}"


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two maps (NaN when either is constant)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


#: Images per forward pass for the path of ``score_along_path`` and the frames of a deletion or
#: insertion curve: larger batches need more memory and are no faster on a CPU.
BATCH = 4


def _cams_per_class(model: nn.Module, target_layers: Sequence[nn.Module], class_ids: List[int],
                    input_tensor: torch.Tensor, method: str) -> np.ndarray:
    """``compute_cams`` of one image for many classes: one forward pass, then one gradient per class.

    The same maps as ``compute_cams`` given the image once per class, for the cost of one image
    (and memory that does not grow with the number of classes).
    """
    cam_of = _method(method)
    layers = check_target_layers(model, target_layers)
    if check_input(input_tensor).shape[0] != 1:
        raise ValueError(f"one image, many classes: input_tensor holds {input_tensor.shape[0]} images")
    size = tuple(input_tensor.shape[-2:])
    names = [shown_name(model, layer) for layer in layers]
    maps = []
    with model_lock(model), torch.inference_mode(False):
        logits, activations = forward_with_activations(model, layers, input_tensor, detach=len(layers) == 1)
        for class_id in class_ids:
            class_id = check_class_id(class_id, logits.shape[1])           # the model's own class count
            gradients = [None] * len(activations) if method in GRADIENT_FREE else \
                class_gradients(logits, activations, [class_id], keep_graph=True, names=names)
            with torch.no_grad():
                maps.append(maps_to_image([cam_of(a.detach(), g) for a, g in zip(activations, gradients)], size)[0])
    return torch.stack(maps).cpu().numpy().astype(np.float32)


def randomisation_check(model: nn.Module, target_layers_of, class_ids: Sequence[int],
                        input_tensor: torch.Tensor, seeds: Sequence[int] = range(5), stages: int = 3,
                        method: str = "GradCAM", progress: bool = True) -> Dict[str, object]:
    """Mean Spearman correlation between GradCAM before and after re-initialising the top ``stages``.

    ``target_layers_of(model)`` names the target layers of a model (``default_target_layers``).
    Maps that come out constant (nothing positive) have no rank correlation: they are counted
    in ``constant`` and left out of the mean, never dropped silently.
    """
    from tqdm.auto import tqdm

    if isinstance(class_ids, (int, np.integer)) and not isinstance(class_ids, bool):
        class_ids = [int(class_ids)]                    # one class id is a list of one
    try:
        if isinstance(class_ids, (str, bytes)):
            raise TypeError
        class_ids = list(class_ids)
    except TypeError:
        raise TypeError(f"class_ids must be a class id or a list of them, such as [245, 281], "
                        f"got {type(class_ids).__name__}") from None
    if not class_ids:
        raise ValueError("class_ids is empty: give at least one class id, such as [245]")
    try:
        seeds = list(seeds)                             # a generator is read once, here
    except TypeError:
        raise TypeError(f"seeds must be a list of whole numbers, such as range(5), "
                        f"got {type(seeds).__name__}") from None
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed, such as range(5)")
    if isinstance(stages, bool) or not isinstance(stages, (int, np.integer)) or stages < 1:
        raise ValueError(f"stages must be a whole number of at least 1 (how many stages to randomise from "
                         f"the top, 3 is usual), got {stages!r}")
    before = _cams_per_class(model, target_layers_of(model), list(class_ids), input_tensor, method)
    correlations, constant = [], 0
    for seed in tqdm(seeds, desc="randomised models", disable=not progress):
        label, randomised = randomised_model(model, seed, stages)
        after = _cams_per_class(randomised, target_layers_of(randomised), list(class_ids), input_tensor, method)
        for b, a in zip(before, after):
            rho = spearman(b, a)
            if np.isnan(rho):
                constant += 1
            else:
                correlations.append(rho)
        del randomised, after                      # one randomised model alive at a time
    return {"stages": label, "mean": float(np.mean(correlations)) if correlations else float("nan"),
            "correlations": correlations, "constant": constant, "pairs": len(seeds) * len(class_ids)}


# --- faithfulness: delete or insert the most important pixels first --------------------------

def _blurred(input_tensor: torch.Tensor) -> torch.Tensor:
    height, width = input_tensor.shape[-2:]
    if min(height, width) < 16:                       # a small image: blur it to one colour per axis
        small = F.interpolate(input_tensor, size=(max(1, height // 16), max(1, width // 16)), mode="bilinear",
                              align_corners=False)
    else:
        small = F.interpolate(input_tensor, scale_factor=1 / 16, mode="bilinear", align_corners=False)
    return F.interpolate(small, size=input_tensor.shape[-2:], mode="bilinear", align_corners=False)


def _curve(model: nn.Module, input_tensor: torch.Tensor, class_id: int, heatmap: np.ndarray, steps: int,
           insert: bool) -> np.ndarray:
    x = model_input(model, input_tensor)
    if x.shape[0] != 1:
        raise ValueError(f"a deletion or insertion curve is for one image, but input_tensor holds {x.shape[0]}; "
                         f"compute one curve per image")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a whole number of at least 1 ({STEPS} is usual), got {steps!r}")
    heatmap = np.asarray(heatmap.detach().float().cpu() if isinstance(heatmap, torch.Tensor) else heatmap,
                         dtype=np.float32)
    if not np.isfinite(heatmap).all():
        raise ValueError("the heatmap holds NaN or infinite values, so it ranks no pixels: compute it again "
                         "(a map of a model whose score is NaN is NaN too)")
    if heatmap.shape != tuple(x.shape[-2:]):
        raise ValueError(f"the heatmap is {'x'.join(map(str, heatmap.shape))} but the image is "
                         f"{x.shape[-2]}x{x.shape[-1]} (height x width); pass the heatmap computed for "
                         f"this input_tensor")
    order = torch.argsort(torch.from_numpy(np.ascontiguousarray(heatmap)).flatten(), descending=True).to(x.device)
    n = order.numel()
    if steps > n:
        raise ValueError(f"steps={steps} is more than the image's {n} pixels: each step removes at least one "
                         f"pixel, so use at most {n} ({STEPS} is usual)")
    blurred = _blurred(x)
    # rank[pixel]: its place in the map's order (0: the most important), so frame k keeps (or blurs)
    # the pixels ranked below round(n * k / steps): each frame is one comparison, not a mask to fill
    rank = torch.empty(n, dtype=torch.long, device=x.device)
    rank[order] = torch.arange(n, device=x.device)
    rank = rank.reshape(1, 1, *x.shape[-2:])
    counts = [round(n * step / steps) for step in range(steps + 1)]
    logits = []
    channels_last = x.dim() == 4
    with eval_copy(model) as running, torch.no_grad():
        device = model_device(model)
        for i in range(0, len(counts), BATCH):
            chosen = torch.cat([rank < count for count in counts[i:i + BATCH]])
            frames = torch.where(chosen, x, blurred) if insert else torch.where(chosen, blurred, x)
            # channels-last memory order: the same numbers, less CPU time per frame for a CNN
            frames = frames.to(device)
            if channels_last:               # fewer CPU cycles for a CNN; a model that .view()s cannot take it
                try:
                    logits.append(class_scores(running(frames.contiguous(memory_format=torch.channels_last))))
                    continue
                except RuntimeError as error:
                    if "view" not in str(error):
                        raise
                    channels_last = False
            logits.append(class_scores(running(frames.contiguous())))
    logits = torch.cat(logits)
    class_id = check_class_id(class_id, logits.shape[1])              # the model's own class count
    probabilities = torch.softmax(logits.float(), dim=1)             # numpy has no bfloat16
    return probabilities[:, class_id].cpu().numpy()


#: Steps of a deletion or insertion curve (steps + 1 forward passes): 1/16 of the pixels each.
STEPS = 16


def deletion_curve(model: nn.Module, input_tensor: torch.Tensor, class_id: int, heatmap: np.ndarray,
                   steps: int = STEPS) -> np.ndarray:
    """The class probability as the most important pixels (by ``heatmap``) are blurred away.

    ``steps + 1`` values, from the intact image to a fully blurred one; a faithful map makes
    it fall fast (a small area under the curve). Batched forward passes without a graph; each
    step costs one forward pass (fewer ``steps``, a coarser curve, sooner).
    """
    return _curve(model, input_tensor, class_id, heatmap, steps, insert=False)


def insertion_curve(model: nn.Module, input_tensor: torch.Tensor, class_id: int, heatmap: np.ndarray,
                    steps: int = STEPS) -> np.ndarray:
    """The class probability as the most important pixels are put back into a blurred image.

    A faithful map makes it rise fast (a large area under the curve). ``steps`` as for ``deletion_curve``.
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
    images = list(images)
    if not images:
        raise ValueError("explain_images got no images: give a list of (input_tensor, rgb_image) pairs "
                         "from load_image")
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
