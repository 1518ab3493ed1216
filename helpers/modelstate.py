"""How the helpers touch a model without changing it: one lock per model, a copy that runs in eval mode,
its device, and the module that really runs inside a wrapper (``unwrap``).

Every helper that runs a model (``cam``, ``architectures``' dry run, ``trust``) runs an ``eval_copy``
of it: new module objects, in eval mode, that share the model's weights and buffers (no memory, a few
ms). So the caller's model is never switched to eval mode, never hooked and never changed by its own
forward pass (Hugging Face's Swin shrinks its ``window_size`` in place for a small image): another
thread that trains it or serves predictions with it at the same time sees nothing of the helpers.
Two helpers working on one model still take turns (``model_lock``); a thread of your own that changes
the weights (a training step) can take that lock too, and the helpers wait for it.

>>> from torch import nn
>>> model = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train()
>>> with eval_mode(model):
...     model.training
False
>>> model.training, model_device(model).type, model_dtype(model)
(True, 'cpu', torch.float32)
"""

from __future__ import annotations

import copy
import functools
import threading
import types
import weakref
from collections import OrderedDict
from contextlib import contextmanager
from typing import Dict, Iterator, Optional

import torch
from torch import nn

_LOCKS: "weakref.WeakKeyDictionary[nn.Module, threading.RLock]" = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model: nn.Module) -> threading.RLock:
    """The lock that serialises the helpers' work on ``model`` (one per model, gone with the model).

    Two threads explaining with one model would otherwise see each other's hooks and
    each other's eval/train switches. A wrapper (``DataParallel``, ``torch.compile``) and the
    model inside it share one lock.

    >>> inner = nn.Linear(2, 2)
    >>> model_lock(nn.DataParallel(inner)) is model_lock(inner)
    True
    """
    model = unwrap(model)
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for a while, then give every submodule back its own mode.

    Holds the model's lock meanwhile, so that another thread cannot switch modes in between.
    """
    with model_lock(model):
        modes = [(module, module.training) for module in model.modules()]
        model.eval()
        try:
            yield model
        finally:
            for module, training in modes:
                module.training = training


def shared_twin(model: nn.Module) -> nn.Module:
    """A twin of ``model`` with modules of its own that share the model's weights and buffers.

    Nothing of the weights is copied: the twin's parameters are parameters of their own that
    hold the model's tensors' memory. Changing the twin's modules (its mode, a layer replaced,
    ``requires_grad_``, a ``.double()``) leaves ``model`` as it was; changing a weight in place
    changes both, so do not train the twin's shared weights.

    >>> model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    >>> twin = shared_twin(model).requires_grad_(False)
    >>> twin[1] = nn.Identity()
    >>> twin[0].weight.data_ptr() == model[0].weight.data_ptr(), type(model[1]).__name__
    (True, 'ReLU')
    >>> model[0].weight.requires_grad
    True
    """
    shared = {id(tensor): nn.Parameter(tensor.detach(), requires_grad=tensor.requires_grad)
              for tensor in model.parameters()}
    shared.update({id(tensor): tensor for tensor in model.buffers()})
    try:
        return copy.deepcopy(model, memo=shared)
    except Exception as error:       # an attribute that cannot be copied: a lock, an open file, a client
        raise TypeError(f"cannot make a twin of this {type(model).__name__}: copying it failed with "
                        f"{type(error).__name__}: {error}. A model that holds such an object (a lock, a file, "
                        f"a connection) as an attribute cannot be copied; keep it outside the model") from error


class EvalCopy:
    """A copy of ``unwrap(model)``'s modules in eval mode that shares the model's weights and buffers.

    ``copy(x)`` runs it; ``copy.of(layer)`` is the copy of one of the model's layers (hooks go
    there), ``copy.original(module)`` the other way round. Tensors the model holds are shared,
    not copied, except inference tensors (a model built under ``torch.inference_mode()``), which
    are cloned so that gradients can flow.
    """

    def __init__(self, model: nn.Module) -> None:
        problem = running_problem(model)
        if problem is not None:
            raise ValueError(problem)
        self._copies: Dict[int, nn.Module] = {}
        self._originals: Dict[int, nn.Module] = {}
        self.module = self._copy(unwrap(model))
        for copied in self._copies.values():
            _rebind(copied, self._copies)
        self.module.eval()

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def of(self, layer: nn.Module) -> Optional[nn.Module]:
        """The copy of ``layer`` (None for a module outside what runs, such as a DataParallel wrapper)."""
        return self._copies.get(id(layer))

    def original(self, module: nn.Module) -> nn.Module:
        """The model's own module that ``module`` (part of the copy) copies."""
        return self._originals.get(id(module), module)

    def _copy(self, module: nn.Module) -> nn.Module:
        if id(module) in self._copies:                   # a module used in two places stays one module
            return self._copies[id(module)]
        copied = object.__new__(type(module))
        self._copies[id(module)], self._originals[id(copied)] = copied, module
        state = dict(module.__dict__)
        state["_parameters"] = {name: _usable(p) for name, p in module._parameters.items()}
        state["_buffers"] = {name: _usable(b) for name, b in module._buffers.items()}
        for name, value in module.__dict__.items():   # hooks: the model's own stay, ours go on the copy only
            if "hooks" in name and isinstance(value, dict):
                state[name] = OrderedDict(value)
        state["_modules"] = {name: None if child is None else self._copy(child)
                             for name, child in module._modules.items()}
        copied.__dict__.update(state)
        return copied


def running_problem(model: nn.Module) -> Optional[str]:
    """Why the helpers cannot run ``model`` (TorchScript, weights on the meta device), with the fix as code; else None."""
    scripted = next((name for name, module in model.named_modules() if isinstance(module, torch.jit.ScriptModule)),
                    None)
    if scripted is not None:
        where = "this model is" if scripted == "" else f"its part {scripted} is"
        return (f"{where} TorchScript (torch.jit.script, torch.jit.trace or torch.jit.load), which runs no Python "
                f"hooks (\"register_forward_hook is not supported on ScriptModules\"), so GradCAM cannot keep a "
                f"layer's output. Use the Python model it was made from, with the same weights: "
                f"`plain = YourModelClass()` and `plain.load_state_dict(model.state_dict())`, then explain plain")
    if any(tensor.is_meta for tensor in (*model.parameters(), *model.buffers())):
        return ("this model's weights are on the meta device: they have shapes but no values (a model built under "
                "torch.device(\"meta\") or accelerate's init_empty_weights), so it cannot run. Give it real weights "
                "first: `model = model.to_empty(device=\"cpu\")` and `model.load_state_dict(state_dict)` with its "
                "weights (from torch.load or safetensors' load_file)")
    return None


def _usable(tensor: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """``tensor`` itself, or a normal copy of an inference tensor (autograd cannot save those)."""
    if tensor is None or not tensor.is_inference():
        return tensor
    with torch.inference_mode(False):
        clone = tensor.clone()
    return nn.Parameter(clone, requires_grad=tensor.requires_grad) if isinstance(tensor, nn.Parameter) else clone


def _rebind(copied: nn.Module, copies: Dict[int, nn.Module]) -> None:
    """Methods and partials stored on a module (``module.forward = ...``, as accelerate does) bound to the
    model's modules are bound to their copies instead; so are hooks that are methods of the model's modules
    (``self.conv.register_forward_hook(self._keep)``), which would otherwise write to the model."""
    for name, value in list(copied.__dict__.items()):
        if "hooks" in name and isinstance(value, dict):              # the copy's own dicts (see _copy)
            for key, hook in list(value.items()):
                if isinstance(hook, types.MethodType) and id(hook.__self__) in copies:
                    value[key] = types.MethodType(hook.__func__, copies[id(hook.__self__)])
        elif isinstance(value, types.MethodType) and id(value.__self__) in copies:
            copied.__dict__[name] = types.MethodType(value.__func__, copies[id(value.__self__)])
        elif isinstance(value, functools.partial) and any(id(arg) in copies for arg in value.args):
            rebound = functools.partial(value.func, *[copies.get(id(arg), arg) for arg in value.args],
                                        **value.keywords)
            rebound.__dict__.update(getattr(value, "__dict__", {}))
            copied.__dict__[name] = rebound


@contextmanager
def eval_copy(model: nn.Module) -> Iterator[EvalCopy]:
    """An ``EvalCopy`` of ``model``, made and used while holding the model's lock.

    >>> model = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train()
    >>> with eval_copy(model) as running:
    ...     running.module.training, running.of(model[0]).weight is model[0].weight
    (False, True)
    >>> model.training
    True
    """
    with model_lock(model):
        yield EvalCopy(model)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without any)."""
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating-point parameter (float32 for a model without any)."""
    for parameter in model.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    return torch.float32


def unwrap(model: nn.Module) -> nn.Module:
    """The module that really computes: ``torch.compile``'s original, ``DataParallel``'s ``module``.

    The helpers run that one, eagerly and on one device, so that their hooks see each layer
    once; its layers are the wrapper's layers, so target layers taken from either work.

    >>> inner = nn.Linear(2, 2)
    >>> unwrap(nn.DataParallel(inner)) is inner
    True
    """
    while True:
        inner = model._modules.get("_orig_mod")                     # torch.compile's OptimizedModule
        if inner is None and isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            inner = model.module
        if not isinstance(inner, nn.Module):
            return model
        model = inner
