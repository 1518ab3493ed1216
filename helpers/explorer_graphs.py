"""The explorer's kept graphs: one forward pass per image and layer, and a bound on how many live.

A *kept graph* is what the explorer needs to answer a new class with one gradient: the logits,
one layer's activations and the part of the network after that layer. It holds tens of MB, so
only the ``MAX_KEPT_GRAPHS`` most recently used ones live, across every explorer and every model.
An explorer whose graph was freed makes it again (one forward pass) when it is next used.

>>> from helpers.explorer_graphs import run_forward, KeptGraphs   # doctest: +SKIP
>>> graph = run_forward(model, model.layer4, input_tensor)        # doctest: +SKIP
>>> graph.gradients_for(245).shape                                # doctest: +SKIP
torch.Size([1, 2048, 7, 10])
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Optional

import torch
from torch import nn

from .cam import class_gradients, forward_with_activations

#: How many kept graphs may live at once, over all explorers (2 fit episode 5's explorers).
MAX_KEPT_GRAPHS = 3
#: How many class gradients a kept graph remembers (each is as large as the activations).
MAX_GRADIENTS = 8


@contextmanager
def grad_mode() -> Iterator[None]:
    """Gradients on, also when the caller is inside ``torch.no_grad()`` or ``torch.inference_mode()``."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


@dataclass
class KeptGraph:
    """One forward pass of one image, keeping one layer's activations and the graph after them."""

    logits: torch.Tensor
    activations: torch.Tensor
    probabilities: torch.Tensor
    gradients: "OrderedDict[int, torch.Tensor]" = field(default_factory=OrderedDict)

    def gradients_for(self, class_id: int) -> torch.Tensor:
        """The gradient of ``class_id``'s score with respect to the activations (remembered)."""
        gradients = self.gradients.get(class_id)
        if gradients is None:
            with grad_mode():
                gradients = class_gradients(self.logits, [self.activations], [class_id], keep_graph=True)[0]
            self.gradients[class_id] = gradients
            while len(self.gradients) > MAX_GRADIENTS:
                self.gradients.popitem(last=False)
        self.gradients.move_to_end(class_id)
        return gradients


def run_forward(model: nn.Module, layer: nn.Module, input_tensor: torch.Tensor) -> KeptGraph:
    """One forward pass of ``model`` keeping ``layer``'s activations (no hook is left behind)."""
    with grad_mode():
        x = input_tensor.clone()                 # an inference tensor becomes a normal one here
        logits, (activations,) = forward_with_activations(model, [layer], x, detach=True)
    return KeptGraph(logits, activations, torch.softmax(logits.detach()[0].float(), dim=0))


class KeptGraphs:
    """Which owners (explorers) may keep a graph: the most recently used, ``MAX_KEPT_GRAPHS`` at most.

    An owner calls ``used(self)`` whenever it uses its graph; the least recently used owners
    beyond the bound get ``drop_graph()`` called. Owners are held weakly.
    """

    def __init__(self) -> None:
        self._owners: "OrderedDict[int, weakref.ReferenceType]" = OrderedDict()

    def used(self, owner) -> None:
        self._owners.pop(id(owner), None)
        self._owners[id(owner)] = weakref.ref(owner)
        for key in [k for k, ref in self._owners.items() if ref() is None]:
            del self._owners[key]
        while len(self._owners) > MAX_KEPT_GRAPHS:
            _, ref = self._owners.popitem(last=False)
            dropped: Optional[object] = ref()
            if dropped is not None:
                dropped.drop_graph()

    def forget(self, owner) -> None:
        self._owners.pop(id(owner), None)

    def live(self) -> int:
        """How many owners hold a kept graph now."""
        return sum(1 for ref in self._owners.values() if ref() is not None and ref().has_graph())


#: The one register of every explorer's kept graph.
KEPT = KeptGraphs()
