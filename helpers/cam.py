"""Class activation maps: one shared mechanism, and methods that only say how they differ.

The mechanism (as in pytorch-grad-cam's ``base_cam.py``, in a few plain functions):

1. run the model once, in eval mode, keeping the target layer's output (its activations)
   with a forward hook that is removed straight after;
2. take the gradient of one score with respect to those activations: a class's score (logit), or
   any *target* (``helpers.targets``: a segmentation's pixels, a detection, a similarity...);
3. a *method* turns activations and gradients into a small map, one value per position;
4. keep the positive part, scale it to [0, 1] and resize it to the image.

GradCAM's step 3 weights each channel by its mean gradient and adds the channels up.
The other methods change only that step; see ``METHODS``.

>>> from helpers import gradcam                                       # doctest: +SKIP
>>> heatmap = gradcam(model, [model.layer4], 245, input_tensor)       # doctest: +SKIP
>>> heatmap.shape, heatmap.dtype                                      # doctest: +SKIP
((224, 224), dtype('float32'))
>>> from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget   # doctest: +SKIP
>>> gradcam(deeplab, [deeplab.backbone.layer4], SemanticSegmentationTarget(12, mask), x)  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .architectures import (display_name, infer_layout, input_channels, prefix_tokens, taken_size,
                            target_layer_choices, to_feature_map, unordered_layer)
from .modelstate import eval_copy, model_device, model_dtype, model_lock, running_problem
from .targets import Target, as_targets, check_embedding_targets, class_scores, target_scores


# --- 3. the methods: (activations [N,C,h,w], gradients [N,C,h,w]) -> maps [N,h,w] -----------

def gradcam_map(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """GradCAM (Selvaraju et al., 2017): channels weighted by their mean gradient."""
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    return (weights * activations).sum(dim=1)


def hirescam_map(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """HiResCAM (Draelos & Carin, 2020): gradient times activation at every position."""
    return (gradients * activations).sum(dim=1)


def gradcam_plus_plus_map(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """GradCAM++ (Chattopadhyay et al., 2018): positive gradients weighted per position (eq. 19)."""
    g2 = gradients ** 2
    g3 = g2 * gradients
    sum_activations = activations.sum(dim=(2, 3), keepdim=True)
    alpha = g2 / (2 * g2 + sum_activations * g3 + 1e-6)
    alpha = torch.where(gradients != 0, alpha, torch.zeros_like(alpha))
    weights = (gradients.clamp(min=0) * alpha).sum(dim=(2, 3), keepdim=True)
    return (weights * activations).sum(dim=1)


def layercam_map(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """LayerCAM (Jiang et al., 2021): positive gradient times activation at every position."""
    return (gradients.clamp(min=0) * activations).sum(dim=1)


def eigencam_map(activations: torch.Tensor, gradients: Optional[torch.Tensor] = None) -> torch.Tensor:
    """EigenCAM (Muhammad & Yeasin, 2020): the first principal component of the activations.

    It uses no gradients, so it is the same map for every class.
    """
    maps = []
    # The SVD in float32 (numpy has no bfloat16, and float16 loses the component); the map is
    # given back in the activations' dtype and device.
    for sample in activations.detach().float().cpu().numpy():
        channels, height, width = sample.shape
        flat = sample.reshape(channels, -1).T
        flat = flat - flat.mean(axis=0)
        # numpy's SVD, as pytorch-grad-cam uses, so that the sign of the component agrees with it.
        _, _, vh = np.linalg.svd(flat, full_matrices=False)
        maps.append(torch.from_numpy(np.float32(flat @ vh[0]).reshape(height, width)))
    return torch.stack(maps).to(device=activations.device, dtype=activations.dtype)


Method = Callable[..., torch.Tensor]
#: A function from a layer's output to a feature map [N, C, h, w] (pytorch-grad-cam's reshape_transform).
Reshape = Callable[[torch.Tensor], torch.Tensor]

#: The CAM methods by name. Each answers in well under a second on a CPU.
METHODS: Dict[str, Method] = {
    "GradCAM": gradcam_map,
    "GradCAM++": gradcam_plus_plus_map,
    "HiResCAM": hirescam_map,
    "LayerCAM": layercam_map,
    "EigenCAM": eigencam_map,
}
#: The methods that need no gradient at all.
GRADIENT_FREE = {"EigenCAM"}


def _method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown CAM method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


# --- 1. the forward pass that keeps the activations -------------------------------------------

def layer_name(model: nn.Module, layer: nn.Module) -> str:
    """The attribute path of ``layer`` inside ``model`` (``"layer4"``), or its class name."""
    for name, module in model.named_modules():
        if module is layer:
            return name or "the model itself"
    return f"a {type(layer).__name__} that is not part of the model"


def shown_name(model: nn.Module, layer: nn.Module) -> str:
    """``layer``'s name as you would type it after ``model.``: ``layer3[1].relu``."""
    return display_name(layer_name(model, layer))


def forward_with_activations(model: nn.Module, target_layers: Sequence[nn.Module], input_tensor: torch.Tensor,
                             detach: bool = False, reshape: Optional[Reshape] = None
                             ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """Run ``model`` once in eval mode; return its logits and each target layer's output.

    The logits are the model's class scores, also when it returns them inside an object, a
    tuple or a dict (``helpers.targets.class_scores``). See ``forward_keeping``, which returns
    the model's output as it is (for a target that reads anything).
    """
    output, activations = forward_keeping(model, target_layers, input_tensor, detach, reshape)
    return class_scores(output), activations


def forward_keeping(model: nn.Module, target_layers: Sequence[nn.Module], input_tensor: torch.Tensor,
                    detach: bool = False, reshape: Optional[Reshape] = None) -> Tuple[object, List[torch.Tensor]]:
    """Run ``model`` once in eval mode; return its output, as it is, and each target layer's output.

    Each layer's output is returned as a feature map ``[N, C, h, w]``. A vision transformer's tokens
    ``[N, 1 + h*w, C]`` and a channels-last ``[N, h, w, C]`` (Swin) are turned into one
    automatically (``helpers.architectures.infer_layout``); ``reshape``, a function from the
    layer's output to ``[N, C, h, w]`` such as pytorch-grad-cam's ``reshape_transform``,
    overrides that. Gradients taken with respect to the returned maps are the model's own.
    The model runs as an eval-mode copy that shares its weights (``helpers.modelstate.eval_copy``):
    the model itself is never switched to eval mode nor hooked, so another thread may use it
    meanwhile. A wrapped model (``torch.compile``, ``DataParallel``) runs as the model it wraps.
    A layer that runs several times keeps its first call, as pytorch-grad-cam does, with a warning.

    With ``detach=True`` (one layer only) the kept activations are a fresh leaf of the graph:
    the network runs without a graph up to the layer, and only the part after it is kept for
    gradients, which saves memory (for a batch of 8 on ResNet-50, most of a gigabyte).
    """
    layers = check_target_layers(model, target_layers)
    if detach and len(layers) != 1:
        raise ValueError("detach=True keeps one layer's activations; pass a single target layer")
    x = model_input(model, input_tensor)
    run = _run_keeping(model, layers, x, detach, reshape)
    if detach and not _carries_graph(run.output):
        # A torch.no_grad() block in the model's forward around the layer ended the graph that
        # the hook began: keep the whole graph instead.
        run = _run_keeping(model, layers, x, False, reshape)
    _check_kept(model, layers, run, tuple(x.shape[-2:]))
    return run.output, [run.kept[i] for i in range(len(layers))]


def _carries_graph(output: object) -> bool:
    """Whether any tensor in a model's output (a tensor, dict, list, tuple or object) has a graph."""
    if isinstance(output, torch.Tensor):
        return output.requires_grad
    if isinstance(output, dict):
        return any(_carries_graph(value) for value in output.values())
    if isinstance(output, (list, tuple)):
        return any(_carries_graph(value) for value in output)
    return any(_carries_graph(value) for value in getattr(output, "__dict__", {}).values())


@dataclass
class _Run:
    """One forward pass with hooks: the model's output, the kept maps by layer, how often each layer
    ran, and which layers' outputs were rearranged automatically (tokens, channels last)."""

    output: object = None
    kept: Dict[int, torch.Tensor] = field(default_factory=dict)
    calls: Dict[int, int] = field(default_factory=dict)
    rearranged: set = field(default_factory=set)


def _run_keeping(model: nn.Module, layers: List[nn.Module], x: torch.Tensor, detach: bool,
                 reshape: Optional[Reshape]) -> _Run:
    """One forward pass of an eval-mode copy of the model, with a hook on each layer's copy, which
    keeps the layer's first output as a map."""
    run = _Run()
    kept = run.kept

    def keeper(index: int, module: nn.Module):                # module: the model's own layer
        def hook(copied: nn.Module, inputs, output):
            run.calls[index] = run.calls.get(index, 0) + 1
            if index in kept:
                return None                             # a later call: the first one is kept
            if detach:
                # The network ran without a graph up to here (nothing kept for gradients before
                # the layer); from here on it keeps one, with the layer's output as its leaf.
                torch.set_grad_enabled(True)
            to_map = reshape or _automatic_reshape(module, output, tuple(x.shape[-2:]), prefix_tokens(model))
            if to_map is not None and reshape is None:
                run.rearranged.add(index)
            # An output made under torch.no_grad() in the model's forward becomes a leaf too, and
            # what the hook hands on carries a graph: GradCAM can then say if the score misses it.
            leaf = detach or not output.requires_grad
            with torch.enable_grad():
                if to_map is None:
                    kept[index] = output.detach().requires_grad_(True) if leaf else output
                    # Hand the rest of the network a copy, so an in-place operation after the layer
                    # (an inplace ReLU, say) cannot change the activations we keep.
                    return kept[index].clone()
                return _keep_reshaped(model, module, output, to_map, leaf, kept, index)
        return hook

    failure: Optional[Exception] = None
    # The hooks go on the layers of an eval-mode copy that shares the model's weights: the model
    # itself is never hooked nor switched to eval mode, so another thread may use it meanwhile.
    with eval_copy(model) as running:
        handles = [running.of(layer).register_forward_hook(keeper(i, layer))
                   for i, layer in enumerate(layers) if running.of(layer) is not None]
        try:
            # detach: no graph before the layer (the hook turns it on), so memory stays that of one
            # forward pass however deep the layer sits; the grad mode is restored when this ends.
            with torch.inference_mode(False), torch.set_grad_enabled(not detach):
                if not detach:
                    x.requires_grad_(True)
                run.output = running(x)
        except _NotAGrid as error:
            failure = error
        except (RuntimeError, AssertionError, ValueError) as error:   # timm's ViTs assert their size,
            failure = error                                              # Hugging Face's raise ValueError
        finally:
            for handle in handles:
                handle.remove()
    if isinstance(failure, _NotAGrid):                  # explained now that the hooks are gone
        raise ValueError(failure.explain(model)) from None
    if failure is not None:
        problem = _channel_problem(model, x) or _size_problem(model, x, failure)
        if problem is None:
            raise failure
        raise ValueError(problem) from failure
    return run


def _check_kept(model: nn.Module, layers: List[nn.Module], run: _Run, image_size: Tuple[int, int]) -> None:
    """A clear error for a layer that never ran; a warning for one that ran twice, a 1x1 grid, or
    tokens out of row order."""
    missing = [layer_name(model, layer) for i, layer in enumerate(layers) if i not in run.kept]
    if missing:
        raise ValueError(f"target layer {', '.join(missing)} never ran when the model ran, so it has no "
                         f"activations; choose a layer the model uses, such as {', '.join(_example_layers(model))}")
    for index, layer in enumerate(layers):
        name = shown_name(model, layer)
        if run.calls[index] > 1:
            block = name.rsplit(".", 1)[0] if "." in name else ""
            warnings.warn(f"target layer {name} ran {run.calls[index]} times in one forward pass (one module used in "
                          f"several places, as torchvision's BasicBlock uses its ReLU); the map uses its first call, "
                          f"as pytorch-grad-cam does." + (f" For the block's output, choose the block, {block}."
                                                          if block else ""), stacklevel=5)
        if run.kept[index].shape[-2:] == (1, 1):
            warnings.warn(f"target layer {name} gives a 1x1 grid for this {image_size[0]}x{image_size[1]} image: a map "
                          f"of one position cannot say where, so it is blank. Choose an earlier layer with a finer "
                          f"grid, such as {_finer_layer(model, layer)}, or a larger image", stacklevel=5)
        elif index in run.rearranged and unordered_layer(model, layer):
            warnings.warn(f"the dry run could not read {name}'s positions in row order (a bright spot on the image "
                          f"changes its grid most somewhere else, as in Hiera's unrolled tokens), so this map may "
                          f"be scrambled; pass reshape= to lay its output out as [N, C, h, w], or choose a layer "
                          f"such as {', '.join(_example_layers(model))}", stacklevel=5)


def _finer_layer(model: nn.Module, layer: nn.Module) -> str:
    """The next target layer after ``layer`` among the model's choices (or the first other one)."""
    try:
        choices = target_layer_choices(model)
    except ValueError:
        return "an earlier block"
    modules = [choice.module for choice in choices]
    later = choices[modules.index(layer) + 1:] if layer in modules else choices
    others = [choice.name for choice in later if choice.module is not layer]
    return others[0] if others else "an earlier block"


class _NotAGrid(Exception):
    """Raised inside a hook for an output that is not a feature map; explained after the hooks are gone."""

    def __init__(self, module: nn.Module, output: object, image_size: Tuple[int, int]) -> None:
        super().__init__()
        self.module, self.output, self.image_size = module, output, image_size

    def explain(self, model: nn.Module) -> str:
        shape = list(self.output.shape) if isinstance(self.output, torch.Tensor) else type(self.output).__name__
        height, width = self.image_size
        return (f"target layer {layer_name(model, self.module)} gives {shape} for a {height}x{width} image, which is "
                f"not a feature map: no grid of positions can be read from it (not [N, C, h, w], [N, h, w, C], or "
                f"tokens [N, 1 + h*w, C]). Choose a layer such as {', '.join(_example_layers(model))}, or pass "
                f"reshape=, a function that turns this output into [N, C, h, w], for example "
                f"reshape=lambda t: t[:, 1:, :].reshape(t.shape[0], 14, 14, t.shape[2]).permute(0, 3, 1, 2)")


def _automatic_reshape(module: nn.Module, output: object, image_size: Tuple[int, int],
                       prefix: Optional[int]) -> Optional[Reshape]:
    """None for a feature map [N, C, h, w]; a reshape for tokens or channels last; else ``_NotAGrid``."""
    if isinstance(output, torch.Tensor) and output.dim() in (3, 4):
        layout = infer_layout(tuple(output.shape), image_size, prefix)
        if layout is None and output.dim() == 4:
            return None                               # any other 4-D output: taken as [N, C, h, w]
        if layout is not None:
            return None if layout.kind == "NCHW" else (lambda t: to_feature_map(t, layout))
    raise _NotAGrid(module, output, image_size)


def _adjoint(to_map: Reshape, like: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """Put ``maps`` ([N, C, h, w]) back where ``to_map`` took them from in a tensor like ``like``.

    The transpose of the (linear) rearrangement, from autograd; it stays differentiable in ``maps``.
    """
    with torch.enable_grad():
        zeros = torch.zeros_like(like, requires_grad=True)
        return torch.autograd.grad(to_map(zeros), zeros, grad_outputs=maps, create_graph=True)[0]


def _keep_reshaped(model: nn.Module, module: nn.Module, output: torch.Tensor, to_map: Reshape, detach: bool,
                   kept: Dict[int, torch.Tensor], index: int) -> torch.Tensor:
    """Keep ``to_map(output)`` and hand the network an output that flows through the kept map.

    The network gets ``output - back(to_map(output)) + back(kept)``: the same values, where
    ``back`` puts a map back in the output's layout. So the gradient with respect to the kept
    map is the model's own gradient, rearranged as ``to_map`` rearranges the output (what
    pytorch-grad-cam gets by applying ``reshape_transform`` to the gradients), and the parts
    ``to_map`` drops (a class token) still reach the score, as in the model.
    """
    base = output.detach() if detach else output
    fmap = to_map(base)
    if not isinstance(fmap, torch.Tensor) or fmap.dim() != 4:
        shape = list(fmap.shape) if isinstance(fmap, torch.Tensor) else type(fmap).__name__
        raise ValueError(f"reshape turned the output of {layer_name(model, module)} ({list(output.shape)}) into "
                         f"{shape}, not a feature map [N, C, h, w]")
    kept[index] = fmap.detach().requires_grad_(True) if detach else fmap
    return base - _adjoint(to_map, base, to_map(base)) + _adjoint(to_map, base, kept[index])


# --- 2 and 4. gradients, and maps scaled to the image -----------------------------------------

def class_gradients(logits: torch.Tensor, activations: Sequence[torch.Tensor], class_ids: Sequence[int],
                    keep_graph: bool = False, names: Optional[Sequence[str]] = None) -> List[torch.Tensor]:
    """The gradient of each image's class score with respect to the kept activations (see ``score_gradients``)."""
    with torch.inference_mode(False), torch.enable_grad():
        index = torch.as_tensor(list(class_ids), device=logits.device).reshape(-1, 1)
        return score_gradients(logits.gather(1, index)[:, 0], activations, keep_graph, names)


def score_gradients(scores: torch.Tensor, activations: Sequence[torch.Tensor], keep_graph: bool = False,
                    names: Optional[Sequence[str]] = None) -> List[torch.Tensor]:
    """The gradient of each image's score (``scores``, ``[N]``) with respect to the kept activations.

    Uses ``torch.autograd.grad``, so no ``.grad`` of the model's weights is touched. When the
    score does not depend on a layer (the model's forward runs it under ``torch.no_grad()``
    or detaches its output: a frozen backbone), a ``ValueError`` names the layer (``names``).
    """
    names = list(names) if names is not None else ["the target layer"] * len(activations)
    # also when the caller is inside torch.no_grad() or torch.inference_mode()
    with torch.inference_mode(False), torch.enable_grad():
        score = scores.sum()
        gradients = torch.autograd.grad(score, list(activations), retain_graph=keep_graph, allow_unused=True) \
            if score.requires_grad else [None] * len(activations)
    unused = [name for name, gradient in zip(names, gradients) if gradient is None]
    if unused:
        raise ValueError(f"the score does not depend on {', '.join(dict.fromkeys(unused))}: is that part of "
                         f"the model's forward run under torch.no_grad() or .detach() (a frozen backbone)? GradCAM "
                         f"follows the gradient from the score back to the layer: freeze weights with "
                         f"requires_grad_(False) instead, or choose a layer after the frozen part")
    return list(gradients)


def scale_maps(maps: torch.Tensor, size: Tuple[int, int], stretch: bool = True) -> torch.Tensor:
    """Keep the positive part, min-max scale each map to [0, 1] (unless ``stretch=False``), resize to ``size``."""
    maps = maps.detach().float().clamp(min=0)
    if stretch:
        maps = _min_max(maps)
    maps = F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return maps


def maps_to_image(small_maps: Sequence[torch.Tensor], size: Tuple[int, int], stretch: bool = True) -> torch.Tensor:
    """Each layer's maps scaled to the image, averaged over layers, and scaled to [0, 1] again.

    ``stretch=False`` keeps the values as the method computed them (the positive part, in the
    layer's own units), resized and averaged: nothing is scaled to [0, 1].
    """
    per_layer = [scale_maps(maps, size, stretch) for maps in small_maps]
    mean = torch.stack(per_layer).mean(dim=0)
    return _min_max(mean) if stretch else mean


def _min_max(maps: torch.Tensor) -> torch.Tensor:
    low = maps.amin(dim=(1, 2), keepdim=True)
    high = (maps - low).amax(dim=(1, 2), keepdim=True)
    return (maps - low) / (high + 1e-7)


@dataclass
class Explanation:
    """What ``explain`` computed: the maps ``[N, H, W]``, the model's ``output`` as it is, its class
    scores ``logits`` ``[N, classes]`` (None where the output holds none), each image's target score
    ``scores`` ``[N]`` (None for a gradient-free method with no target to read), and the ``targets``."""

    maps: np.ndarray
    output: object
    logits: Optional[torch.Tensor]
    scores: Optional[torch.Tensor]
    targets: List[Target]


def explain(model: nn.Module, target_layers: Sequence[nn.Module], targets: object, input_tensor: torch.Tensor,
            method: str = "GradCAM", reshape: Optional[Reshape] = None, stretch: bool = True) -> Explanation:
    """The shared mechanism of ``compute_cams``, ``gradcam`` and ``viz_gradcam``: maps, and what they explain."""
    cam_of = _method(method)
    layers = check_target_layers(model, target_layers)
    targets = as_targets(targets, check_input(input_tensor).shape[0])
    # One call at a time per model (threads), and a graph even inside torch.inference_mode().
    with model_lock(model), torch.inference_mode(False):
        output, activations = forward_keeping(model, layers, input_tensor, detach=len(layers) == 1, reshape=reshape)
        try:
            logits: Optional[torch.Tensor] = class_scores(output).detach()
        except ValueError:
            logits = None
        gradients: List[Optional[torch.Tensor]] = [None] * len(activations)
        scores = None
        if method not in GRADIENT_FREE:
            check_embedding_targets(model, output, targets)
            scores = target_scores(output, targets)       # the model's own class count, not ImageNet's 1000
            gradients = score_gradients(scores, activations, names=[shown_name(model, l) for l in layers])
        elif logits is not None or any(callable(target) for target in targets):
            scores = target_scores(output, targets)
        size = tuple(input_tensor.shape[-2:])
        with torch.no_grad():
            maps = maps_to_image([cam_of(a.detach(), g) for a, g in zip(activations, gradients)], size, stretch)
        return Explanation(maps.cpu().numpy().astype(np.float32), output, logits,
                           None if scores is None else scores.detach(), targets)


def compute_cams(model: nn.Module, target_layers: Sequence[nn.Module], targets: object,
                 input_tensor: torch.Tensor, method: str = "GradCAM",
                 reshape: Optional[Reshape] = None, stretch: bool = True
                 ) -> Tuple[np.ndarray, Optional[torch.Tensor]]:
    """Class activation maps for a batch: one target per image.

    ``targets``: a list of one target per image, each a class id, None (the top class) or a
    function of the model's output for that image that gives one number (pytorch-grad-cam's
    target objects work unchanged; see ``helpers.targets``). One target alone (not in a list)
    is used for every image.

    Returns ``(maps, scores)``: maps as float32 ``[N, H, W]`` in [0, 1]; and the model's class
    scores (logits) ``[N, classes]`` where its output holds them, else each image's target score
    ``[N]`` (None for a gradient-free method on such a model with no target).
    Several target layers are averaged, as pytorch-grad-cam does. ``reshape``: see
    ``forward_keeping`` (vision transformers and Swin need none, it is automatic).
    ``stretch=False``: the maps before they are stretched to [0, 1] (see ``gradcam``).
    """
    found = explain(model, target_layers, targets, input_tensor, method, reshape, stretch)
    return found.maps, found.logits if found.logits is not None else found.scores


def gradcam(model: nn.Module, target_layers: Sequence[nn.Module], class_id: Target,
            input_tensor: torch.Tensor, method: str = "GradCAM", reshape: Optional[Reshape] = None,
            stretch: bool = True) -> np.ndarray:
    """The GradCAM heatmap of one image for one class, or any target: float32 ``[H, W]`` in [0, 1].

    ``class_id=None`` explains the class the model predicts. ``class_id`` may also be a target:
    a function of the model's output for the image that gives one number (pytorch-grad-cam's
    ``SemanticSegmentationTarget``, ``FasterRCNNBoxScoreTarget``, ``SimilarityToConceptTarget``...
    unchanged, or ``lambda output: ...``; see ``helpers.targets``). ``method`` can name any of
    ``METHODS`` (GradCAM, GradCAM++, HiResCAM, LayerCAM, EigenCAM). ``reshape`` turns the
    layer's output into ``[N, C, h, w]`` when it cannot be inferred (see ``forward_keeping``).

    ``stretch=False`` returns the map *before* it is stretched to [0, 1]: the positive part of
    the weighted sum, in the layer's own units, only resized to the image. Its largest value
    says how strong the evidence is at its strongest, which the stretched map hides (its
    largest value is always 1, or 0 for a blank map). Resizing smooths the 7x7 grid, so that
    value can be a few percent below the grid's own largest value.

    The model is left exactly as it was: the computation runs on an eval-mode copy that shares
    its weights, so its mode, weights, BatchNorm statistics, hooks and settings never change.
    """
    check_input(input_tensor)
    if input_tensor.shape[0] != 1:
        raise ValueError(f"gradcam explains one image, but input_tensor holds {input_tensor.shape[0]}; "
                         f"use compute_cams for a batch")
    maps, _ = compute_cams(model, target_layers, [class_id], input_tensor, method, reshape=reshape, stretch=stretch)
    return maps[0]


# --- checks that give clear messages --------------------------------------------------------

def check_input(input_tensor: object) -> torch.Tensor:
    """``input_tensor`` when it is a float tensor [N, C, H, W] of finite values, else a clear error."""
    if not isinstance(input_tensor, torch.Tensor):
        raise TypeError(f"input_tensor must be a torch.Tensor [N, 3, H, W] (from load_image; [N, 1, H, W] for a "
                        f"grey model), got {type(input_tensor).__name__}")
    if input_tensor.dim() != 4 or not input_tensor.is_floating_point():
        raise ValueError(f"input_tensor must be a float tensor of shape [N, 3, H, W] (from load_image; [N, C, H, W] "
                         f"for a model of C channels), got {input_tensor.dtype} of shape {tuple(input_tensor.shape)}")
    bad = ~torch.isfinite(input_tensor)
    if bool(bad.any()):
        count, first = int(bad.sum()), bad.nonzero()[0].tolist()
        raise ValueError(f"input_tensor holds {count} NaN or infinite value{'s' if count > 1 else ''} (the first at "
                         f"{first}), which would make the whole map NaN: check how it was made (a division by a "
                         f"zero std? a broken image?)")
    return input_tensor


def model_input(model: nn.Module, input_tensor: object) -> torch.Tensor:
    """A checked copy of ``input_tensor`` on the model's device, in the model's dtype.

    A float64, float16 or bfloat16 image on a float32 model is cast to float32. The copy is an
    ordinary tensor even when made inside ``torch.inference_mode()``, so gradients can flow.
    """
    x = check_input(input_tensor)
    with torch.inference_mode(False):
        return x.detach().to(device=model_device(model), dtype=model_dtype(model)).clone()


def _channel_problem(model: nn.Module, x: torch.Tensor) -> Optional[str]:
    """Why ``x`` does not fit the model when its channels are not those of the first convolution, else None."""
    channels = input_channels(model)
    if channels is None or x.shape[1] == channels:
        return None
    fix = f"make it with load_image(..., model=model), which makes {'a grey' if channels == 1 else 'an RGB'} image" \
        if channels in (1, 3) else f"make the input tensor [N, {channels}, H, W] yourself"
    return (f"this model takes {channels} channel{'s' if channels > 1 else ''} (its first convolution), but "
            f"input_tensor has {x.shape[1]}: {fix}")


def _size_problem(model: nn.Module, x: torch.Tensor, failure: Optional[BaseException] = None) -> Optional[str]:
    """Why ``x`` does not fit the model when it failed at this size but runs at another (a ViT, a CNN
    that flattens, a Swin too small for its windows), else None."""
    taken = taken_size(model)                          # the dry run, remembered for the model
    if taken is None or tuple(x.shape[-2:]) == taken[0]:
        return None
    (height, width), (h, w) = taken[0], x.shape[-2:]
    if taken[1]:
        return (f"this model takes {height}x{width} images only, but input_tensor is {h}x{w}: make it with "
                f"load_image(..., model=model), which scales the image to {height}x{width}")
    said = f" ({type(failure).__name__}: {str(failure).splitlines()[0][:160]})" if failure is not None else ""
    return (f"this model runs at {height}x{width} (its own size) but failed at {h}x{w}{said}: make the input "
            f"with load_image(..., model=model), which scales the image for it")


def check_target_layers(model: nn.Module, target_layers: object) -> List[nn.Module]:
    """``target_layers`` as a list of the model's layers, or a clear error (also for a model the helpers
    cannot run: TorchScript, the meta device; see ``helpers.modelstate.running_problem``)."""
    problem = running_problem(model)
    if problem is not None:
        raise ValueError(problem)
    if isinstance(target_layers, nn.Module):
        target_layers = [target_layers]
    if not isinstance(target_layers, (list, tuple)) or not target_layers:
        raise TypeError("target_layers must be a non-empty list of layers, for example [model.layer4]")
    for layer in target_layers:
        if not isinstance(layer, nn.Module):
            raise TypeError(f"target_layers must hold layers (nn.Module), found {type(layer).__name__}")
        if not any(module is layer for module in model.modules()):
            raise ValueError(f"target layer {type(layer).__name__} is not part of this model; "
                             f"choose one of its layers, such as {', '.join(_example_layers(model))}")
    return list(target_layers)


def _example_layers(model: nn.Module) -> List[str]:
    try:
        return [choice.name for choice in target_layer_choices(model)][:2]
    except ValueError:
        return ["the last convolutional block"]
