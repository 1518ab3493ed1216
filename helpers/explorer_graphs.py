"""The explorer's computation: kept graphs (one forward pass per image and layer), and maps made from them.

A *kept graph* is what the explorer needs to answer a new class with one gradient: the logits,
one layer's activations and the part of the network after that layer. It holds tens of MB, so
only the ``MAX_KEPT_GRAPHS`` most recently used ones live, across every explorer and every model.
An explorer whose graph was freed makes it again (one forward pass) when it is next used.
``ExplorerMaps`` is one explorer's computation: its kept graph and the low-resolution maps it made.

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
from typing import Iterator, Optional, Tuple

import numpy as np
import torch
from torch import nn

from .cam import GRADIENT_FREE, METHODS, class_gradients, forward_keeping, maps_to_image, score_gradients, shown_name
from .explorer_state import TARGET, ExplorerState, Message
from .targets import class_scores, probability_of, target_scores

#: How many kept graphs may live at once, over all explorers (2 fit episode 5's explorers).
MAX_KEPT_GRAPHS = 3
#: How many class gradients a kept graph remembers (each is as large as the activations).
MAX_GRADIENTS = 8
#: How many low-resolution maps an explorer remembers.
MAP_CACHE_SIZE = 256


@contextmanager
def grad_mode() -> Iterator[None]:
    """Gradients on, also when the caller is inside ``torch.no_grad()`` or ``torch.inference_mode()``."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


@dataclass
class KeptGraph:
    """One forward pass of one image, keeping one layer's activations and the graph after them.

    ``logits``: the model's class scores (None where its output holds none: a detector, a
    segmentation); ``probabilities``: of each class (softmax, sigmoid, or the scores as they are:
    ``kind``); ``output`` and ``target``: the model's output as it is, and the target given to
    explore(), whose score is the class ``TARGET``.
    """

    logits: Optional[torch.Tensor]
    activations: torch.Tensor
    probabilities: torch.Tensor
    gradients: "OrderedDict[int, torch.Tensor]" = field(default_factory=OrderedDict)
    layer: str = "the target layer"
    output: object = None
    target: object = None
    kind: Optional[str] = "softmax"

    def value(self, class_id: int) -> str:
        """``"p = 0.38"`` for a class (``"score = 3.2"`` where scores are not probabilities), and the
        target's ``"score = ..."``."""
        if class_id == TARGET:
            with torch.no_grad():
                return f"score = {float(target_scores(self.output, [self.target])[0]):.3g}"
        return f"{'p' if self.kind else 'score'} = {float(self.probabilities[class_id]):.3g}"

    def gradients_for(self, class_id: int) -> torch.Tensor:
        """The gradient of ``class_id``'s score (or the target's) with respect to the activations (remembered)."""
        gradients = self.gradients.get(class_id)
        if gradients is None:
            with grad_mode():
                if class_id == TARGET:
                    gradients = score_gradients(target_scores(self.output, [self.target]), [self.activations],
                                                keep_graph=True, names=[self.layer])[0]
                else:
                    gradients = class_gradients(self.logits, [self.activations], [class_id], keep_graph=True,
                                                names=[self.layer])[0]
            self.gradients[class_id] = gradients
            while len(self.gradients) > MAX_GRADIENTS:
                self.gradients.popitem(last=False)
        self.gradients.move_to_end(class_id)
        return gradients


def run_forward(model: nn.Module, layer: nn.Module, input_tensor: torch.Tensor, target: object = None,
                probability: object = "auto") -> KeptGraph:
    """One forward pass of ``model`` keeping ``layer``'s activations (the model is never hooked).

    ``target``: a target whose score the class ``TARGET`` stands for; ``probability``: how the
    class scores become probabilities ("auto": as the model says, see ``helpers.targets.probability_of``).
    """
    with grad_mode():
        x = input_tensor.clone()                 # an inference tensor becomes a normal one here
        output, (activations,) = forward_keeping(model, [layer], x, detach=True)
    try:
        logits: Optional[torch.Tensor] = class_scores(output)
    except ValueError:
        if target is None:
            raise
        logits = None
    if logits is None:
        kind, probabilities = None, torch.zeros(0)
    else:
        how = probability_of(model, logits.shape[1], probability)
        kind, probabilities = how.kind, how.of(logits[0])
    return KeptGraph(logits, activations, probabilities, layer=shown_name(model, layer), output=output,
                     target=target, kind=kind)


def weights_version(model: nn.Module) -> Tuple[Tuple[int, int], ...]:
    """Which tensors the model's weights and buffers are, and how often each was changed in place
    (an optimizer's step, ``load_state_dict``, BatchNorm statistics in train mode all count)."""
    return tuple((id(t), t._version) for t in (*model.parameters(), *model.buffers()))


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


class ExplorerMaps:
    """One explorer's computation: the kept graph of its state's image and layer, and the maps made from it.

    The model is held weakly, and strongly only while the graph is kept (``KEPT`` decides how long).
    """

    def __init__(self, model: nn.Module, state: ExplorerState) -> None:
        self.state = state
        self._model_ref = weakref.ref(model)
        self._model: Optional[nn.Module] = model          # held strongly only while the graph is kept
        self._graph: Optional[KeptGraph] = None
        self._graph_key: Optional[Tuple[str, str]] = None
        self._maps: "OrderedDict[tuple, torch.Tensor]" = OrderedDict()
        self._weights: Tuple[Tuple[int, int], ...] = ()

    def has_graph(self) -> bool:
        return self._graph is not None

    def drop_graph(self) -> None:
        """Free the kept graph (and the strong hold on the model); the next use makes it again."""
        self._graph, self._graph_key, self._model = None, None, None

    def model(self) -> nn.Module:
        model = self._model_ref()
        if model is None:
            raise Message("This explorer's model is no longer in memory: no variable holds it any more "
                          "(a newer model took its name?). Run the explorer's cell again.")
        return model

    def graph(self) -> KeptGraph:
        """The kept graph of the chosen image and layer, made with one forward pass if needed."""
        key, weights = (self.state.image, self.state.layer), weights_version(self.model())
        if weights != self._weights:             # trained or loaded since: the kept graph and maps are stale
            self.drop_graph()
            self._maps.clear()
        if self._graph is None or self._graph_key != key:
            model, layer = self.model(), self.state.layers[key[1]]()
            if layer is None:
                raise Message(f"The layer {key[1]} is no longer part of the model; choose another.")
            self.drop_graph()                    # free the previous graph before making a new one
            graph = run_forward(model, layer, self.state.images[key[0]][0], self.state.target, self.state.probability)
            if self.state.names and len(graph.probabilities) != len(self.state.names):
                raise Message(f"The model changed since this explorer was made: it now gives "
                              f"{len(graph.probabilities)} class scores, not {len(self.state.names)} (a new head?). "
                              f"Run the explore(...) cell again to explore the model as it is now.")
            self._graph, self._graph_key, self._model, self._weights = graph, key, model, weights
        KEPT.used(self)
        return self._graph

    def heatmap_for(self, class_id: int) -> np.ndarray:
        """The chosen method's map for ``class_id`` at the image's size, float32 in [0, 1]."""
        return self._map(class_id).numpy()

    def _map(self, class_id: int) -> torch.Tensor:
        graph, state = self.graph(), self.state
        key = (state.image, state.layer, state.method, None if state.method in GRADIENT_FREE else class_id)
        small = self._maps.get(key)
        if small is None:
            gradients = None if state.method in GRADIENT_FREE else graph.gradients_for(class_id)
            with torch.inference_mode(False), torch.no_grad():
                small = METHODS[state.method](graph.activations.detach(), gradients)
            self._maps[key] = small
            while len(self._maps) > MAP_CACHE_SIZE:
                self._maps.popitem(last=False)
        self._maps.move_to_end(key)
        with torch.inference_mode(False), torch.no_grad():
            return maps_to_image([small], tuple(state.images[state.image][0].shape[-2:]))[0]

    def forget_gone_images(self) -> None:
        """Forget the maps and the graph of images the state no longer holds (an old or failed upload)."""
        self._maps = OrderedDict((key, small) for key, small in self._maps.items() if key[0] in self.state.images)
        if self._graph_key is not None and self._graph_key[0] not in self.state.images:
            self.drop_graph()
