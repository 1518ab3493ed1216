"""How the helpers touch a model without changing it: one lock per model, eval mode for a while, its device,
and the module that really runs inside a wrapper (``unwrap``).

Every helper that runs a model (``cam``, ``architectures``' dry run, ``trust``) goes through these,
so that the caller's model is left as it was: each submodule's train/eval mode is restored, and two
threads working on one model take turns instead of seeing each other's hooks and mode switches.

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
import threading
import weakref
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

_LOCKS: "weakref.WeakKeyDictionary[nn.Module, threading.RLock]" = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model: nn.Module) -> threading.RLock:
    """The lock that serialises the helpers' work on ``model`` (one per model, gone with the model).

    Two threads explaining with one model would otherwise see each other's hooks and
    each other's eval/train switches.
    """
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

    Nothing of the weights is copied: changing the twin's modules (its mode, a layer replaced)
    leaves ``model`` as it was, while the tensors are the model's own, so do not train the twin
    or change its weights in place, nor its weights' memory format or dtype.

    >>> model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    >>> twin = shared_twin(model)
    >>> twin[1] = nn.Identity()
    >>> twin[0].weight is model[0].weight, type(model[1]).__name__
    (True, 'ReLU')
    """
    shared = {id(tensor): tensor for tensor in list(model.parameters()) + list(model.buffers())}
    return copy.deepcopy(model, memo=shared)


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
