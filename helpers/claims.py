"""What the lesson's text says a figure shows, as checks that run on any model.

Participants run ResNet-50 with its real weights; the lesson is written and tested with an
offline stand-in. So every sentence about what a map or a number shows is either computed in
the notebook, true for every model, or one of the named ``CLAIMS`` below, which
``python lesson.py preflight`` runs against the model the learners will use.

- ``regions(image_name)``: the hand-drawn regions of a lesson image (``data/regions.json``);
- ``where(cam, image_name)``: says in words where a map's peak is, e.g. "peak: top centre (on the dog)";
- ``CLAIMS`` / ``check_claims(model)``: the lesson's claims, each with its episode and sentence.

>>> import numpy as np
>>> cam = np.zeros((224, 224), np.float32); cam[40, 120] = 1.0
>>> where(cam, "both.png")
'peak: top centre (on the dog)'
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

from . import shortcut, trust
from ._files import read_data_file
from .cam import gradcam
from .downloads import fetch
from .images import load_image
from .labels import class_name
from .models import default_target_layers, layer_choices, load_model
from .modelstate import eval_copy, model_device
from .targets import class_scores

REGIONS_FILE = Path(__file__).resolve().parent.parent / "data" / "regions.json"

Box = Tuple[float, float, float, float]


@lru_cache(maxsize=1)
def _all_regions() -> Dict[str, Dict[str, List[Box]]]:
    data = json.loads(read_data_file("regions.json"))      # the checkout's data/, or the installed package's
    return {image: {name: [tuple(box) for box in boxes] for name, boxes in named.items()}
            for image, named in data["images"].items()}


def regions(image_name: str) -> Dict[str, List[Box]]:
    """The named regions of a lesson image: ``{name: [(left, top, right, bottom), ...]}`` in [0, 1].

    Listed in order of precedence (animals first). Raises ``KeyError`` naming the known images.

    >>> list(regions("both.png"))[:2]
    ['cat', 'dog']
    """
    known = _all_regions()
    name = Path(str(image_name)).name
    if name not in known:
        raise KeyError(f"no regions are drawn for {image_name!r}; the lesson images with regions are "
                       f"{', '.join(known)}")
    return known[name]


def region_at(image_name: str, x: float, y: float) -> Optional[str]:
    """The first region of ``image_name`` that holds the point (x, y), given as fractions of width and height."""
    for name, boxes in regions(image_name).items():
        if any(left <= x <= right and top <= y <= bottom for left, top, right, bottom in boxes):
            return name
    return None


def _labels(image_name: str, shape: Tuple[int, int]) -> Tuple[np.ndarray, List[str]]:
    """Each pixel's region (by precedence, as ``region_at`` at its centre): indices into the names; -1 for none."""
    names = list(regions(image_name))
    height, width = shape
    ys = (np.arange(height) + 0.5)[:, None] / height
    xs = (np.arange(width) + 0.5)[None, :] / width
    labels = np.full(shape, -1, dtype=np.int64)
    for index in range(len(names) - 1, -1, -1):            # the first region named is painted last: it wins
        for left, top, right, bottom in regions(image_name)[names[index]]:
            labels[(xs >= left) & (xs <= right) & (ys >= top) & (ys <= bottom)] = index
    return labels, names


def peak(cam: np.ndarray) -> Optional[Tuple[float, float]]:
    """The (x, y) of a map's largest value as fractions of its width and height.

    None for a blank map: a flat one, or one without any positive value (a signed map's
    negative part is evidence against the class, not a place where it is).
    """
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 2 or cam.size == 0:
        raise ValueError(f"a map must be 2-D [H, W], got shape {cam.shape}")
    finite = np.isfinite(cam)
    if not finite.any():
        return None
    cam = np.where(finite, cam, cam[finite].min())       # a NaN or inf pixel is ignored, not the whole map
    if float(cam.max()) <= max(float(cam.min()), 0.0):  # flat, or no positive value (a signed map)
        return None
    row, col = np.unravel_index(int(cam.argmax()), cam.shape)
    height, width = cam.shape
    return (col + 0.5) / width, (row + 0.5) / height


def _position(x: float, y: float) -> str:
    rows = ("top", "middle", "bottom")
    cols = ("left", "centre", "right")
    row, col = rows[min(int(y * 3), 2)], cols[min(int(x * 3), 2)]
    return "centre" if (row, col) == ("middle", "centre") else f"{row} {col}"


def peak_region(cam: np.ndarray, image_name: str) -> Optional[str]:
    """The region name under the map's peak ("" when on no drawn region; None for a blank map)."""
    point = peak(cam)
    if point is None:
        return None
    return region_at(image_name, *point) or ""


#: Around a peak, ``where`` looks at a square this fraction of the image's size on each side of it:
#: 1/14 is half a cell of a 7x7 map, the coarsest the lesson's maps get.
NEAR = 1 / 14
#: A peak is "clearly" inside a region when the region holds at least this much of that square.
CLEARLY = 2 / 3


def near_peak(cam: np.ndarray, image_name: str) -> Dict[str, float]:
    """The regions around a map's peak: {name: fraction of the square around it}, largest first.

    The square reaches ``NEAR`` of the image's width and height to each side of the peak; a
    pixel counts for the region ``region_at`` names there ("" for no marked region). Empty for
    a blank map.

    >>> cam = np.zeros((224, 224), np.float32); cam[40, 120] = 1.0
    >>> near_peak(cam, "both.png")
    {'dog': 1.0}
    """
    point = peak(cam)
    if point is None:
        return {}
    height, width = np.shape(cam)
    labels, names = _labels(image_name, (height, width))
    row, col = int(point[1] * height), int(point[0] * width)
    dy, dx = max(1, round(NEAR * height)), max(1, round(NEAR * width))
    around = labels[max(0, row - dy):row + dy + 1, max(0, col - dx):col + dx + 1]
    found, counts = np.unique(around, return_counts=True)
    shares = {(names[i] if i >= 0 else ""): float(count / around.size) for i, count in zip(found, counts)}
    return dict(sorted(shares.items(), key=lambda item: -item[1]))


def _on(name: str) -> str:
    return f"on the {name}" if name else "on no marked region"


def where(cam: np.ndarray, image_name: str) -> str:
    """Say where a heatmap's peak is, in words, using the image's drawn regions.

    ``cam`` is a map of the image as ``load_image`` returns it (any size: regions are fractions).
    When the peak sits near the edge of a region, so that no region holds two thirds of the
    square around it (``near_peak``), it says so and names the two regions that share it.

    >>> import numpy as np
    >>> where(np.zeros((224, 224), np.float32), "both.png")
    'no peak: the map is blank (no position has positive evidence)'
    """
    point = peak(cam)
    if point is None:
        return "no peak: the map is blank (no position has positive evidence)"
    name = region_at(image_name, *point) or ""
    around = near_peak(cam, image_name)
    if max(around.values()) >= CLEARLY:
        return f"peak: {_position(*point)} ({_on(name)})"
    first, second = list(around)[:2]
    other = second if first == name else first
    return (f"peak: {_position(*point)} ({_on(name)}, but near the edge of the {other or 'marked regions'}: "
            f"not clearly inside one region)")


class Share(float):
    """The share of a map's weight inside a region (a float), with the region's ``area`` beside it.

    ``area`` is the fraction of the image that the region covers, which is the share a
    uniform map (the same value everywhere) would get: the chance level. ``ratio`` is
    share ÷ area: 1 is chance, 2 twice chance. It prints both:

    >>> Share(0.41, "cat", 0.27)
    Share(0.41, region='cat', area=0.27)
    >>> print(Share(0.41, "cat", 0.27))
    41% on the cat (a uniform map: 27%, so 1.5x chance)
    """

    region: str
    area: float

    def __new__(cls, share: float, region: str, area: float) -> "Share":
        value = super().__new__(cls, share)
        value.region, value.area = region, float(area)
        return value

    @property
    def ratio(self) -> float:
        return float(self) / self.area if self.area > 0 else float("nan")

    def __str__(self) -> str:
        return f"{float(self):.0%} on the {self.region} (a uniform map: {self.area:.0%}, so {self.ratio:.1f}x chance)"

    def __repr__(self) -> str:
        return f"Share({float(self):.2g}, region={self.region!r}, area={self.area:.2g})"

    def __reduce__(self):
        return (Share, (float(self), self.region, self.area))


def _check_map(cam: np.ndarray) -> np.ndarray:
    cam = np.asarray(cam, dtype=np.float64)
    if cam.ndim != 2 or cam.size == 0:
        raise ValueError(f"a map must be 2-D [H, W], got shape {cam.shape}; for a batch of maps pass one, "
                         f"such as maps[0]")
    return np.where(np.isfinite(cam), cam, 0.0).clip(min=0.0)   # a NaN, inf or negative pixel carries no weight


def _inside(image_name: str, region: str, shape: Tuple[int, int]) -> np.ndarray:
    known = regions(image_name)
    if region not in known:
        raise KeyError(f"no region {region!r} is drawn on {Path(str(image_name)).name}; its regions are "
                       f"{', '.join(known)}")
    height, width = shape
    inside = np.zeros(shape, dtype=bool)
    for left, top, right, bottom in known[region]:
        inside[int(round(top * height)):int(round(bottom * height)), int(round(left * width)):int(round(right * width))] = True
    return inside


def region_area(image_name: str, region: str, shape: Tuple[int, int] = (224, 224)) -> float:
    """The fraction of an image (of ``shape``, H x W) inside a region's boxes: what a uniform map puts there.

    >>> round(region_area("both.png", "cat"), 2)
    0.27
    """
    return float(_inside(image_name, region, shape).mean())


def share_in(cam: np.ndarray, image_name: str, region: str) -> Share:
    """The fraction of a map's total weight that lies inside one region's boxes, with the region's area.

    Returns a ``Share``: a float (use it as a number, ``f"{share:.0%}"``) that also carries
    ``area``, the share a uniform map would get there, and ``ratio`` = share ÷ area. The weight
    is the map's positive part: a signed map's negative values (evidence against the class)
    count as 0, as GradCAM's own ReLU does; a map without positive values has share 0.

    >>> cam = np.zeros((100, 100)); cam[80:, 30:60] = 1.0
    >>> print(share_in(cam, "both.png", "cat"))
    100% on the cat (a uniform map: 27%, so 3.7x chance)
    """
    cam = _check_map(cam)
    inside = _inside(image_name, region, cam.shape)
    total = cam.sum()
    return Share(float(cam[inside].sum() / total) if total > 0 else 0.0, region, float(inside.mean()))


def share_on(maps: np.ndarray, windows: np.ndarray, region: str,
             photo: str = shortcut.TEST_PHOTOS[0]) -> Tuple[np.ndarray, np.ndarray]:
    """For each crop's map: the share of its weight on ``region`` of the photo, and the region's area in the crop.

    ``share_in`` for episode 9's crops: ``windows`` are ``ShortcutData.test_windows``, where each
    crop lies in ``photo``; the regions are mapped into each crop through its window. The area
    is what a uniform map would get: the chance level.
    """
    count, height, width = maps.shape
    shares, areas = np.zeros(count), np.zeros(count)
    columns = (np.arange(width) + 0.5) / width
    rows = (np.arange(height) + 0.5) / height
    image_width, image_height = Image.open(fetch(photo)).size
    for i, (left, top, side, mirrored) in enumerate(windows):
        xs = left + (columns[::-1] if mirrored else columns) * side
        ys = top + rows * side * image_width / image_height
        inside = np.zeros((height, width), dtype=bool)
        for x0, y0, x1, y1 in regions(photo)[region]:
            inside |= ((ys >= y0) & (ys <= y1))[:, None] & ((xs >= x0) & (xs <= x1))[None, :]
        total = maps[i].sum()
        shares[i] = maps[i][inside].sum() / total if total > 0 else 0.0
        areas[i] = inside.mean()
    return shares, areas


def class_contrast(map_a: np.ndarray, map_b: np.ndarray, name_a: str = "the first class",
                   name_b: str = "the second class") -> str:
    """How alike two classes' maps of one image are (Spearman), in a sentence that says what it means.

    A map is *specific* to its class only if the map of another class looks different. A high
    rank correlation (0.7 or more) means the two maps rank the positions nearly alike: they
    show where the model finds evidence for many classes, not for this one.

    >>> ramp = np.arange(49.0).reshape(7, 7)
    >>> class_contrast(ramp, ramp ** 2, "tabby", "crossword puzzle")[:78]
    'Spearman 1.00 between the maps of tabby and crossword puzzle: high. They rank '
    """
    rho = trust.spearman(map_a, map_b)
    pair = f"the maps of {name_a} and {name_b}"
    if np.isnan(rho):
        return f"{pair} cannot be compared: one of them is blank (the same value everywhere)"
    if rho >= 0.7:
        meaning = ("high. They rank the positions nearly alike, so neither map is specific to its class: "
                   "they show where the model finds evidence for many classes.")
    elif rho >= 0.3:
        meaning = "moderate. The maps share part of their ranking; read each class's map with care."
    else:
        meaning = "low. The maps rank the positions differently: each class has evidence of its own."
    return f"Spearman {rho:.2f} between {pair}: {meaning}"


# --- the lesson's claims ------------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    """One thing the text says a model shows. ``check(lab)`` returns (observed, ok)."""

    name: str
    episode: str
    sentence: str
    expected: str
    check: Callable[["Lab"], Tuple[str, bool]]


class Lab:
    """What the claims need, computed once per model and kept: images, predictions, maps."""

    def __init__(self, model) -> None:
        self.model = model
        self._images: Dict[str, tuple] = {}
        self._cache: Dict[tuple, object] = {}

    def image(self, name: str):
        if name not in self._images:
            self._images[name] = load_image(fetch(name))
        return self._images[name]

    def probabilities(self, name: str) -> np.ndarray:
        key = ("p", name)
        if key not in self._cache:
            with eval_copy(self.model) as running, torch.no_grad():
                logits = class_scores(running(self.image(name)[0].to(model_device(self.model))))
            self._cache[key] = torch.softmax(logits[0].float(), dim=0).cpu().numpy()
        return self._cache[key]

    def top(self, name: str) -> int:
        return int(self.probabilities(name).argmax())

    def cam(self, name: str, class_id: Optional[int], method: str = "GradCAM") -> np.ndarray:
        class_id = self.top(name) if class_id is None else class_id
        key = ("cam", name, class_id, method)
        if key not in self._cache:
            self._cache[key] = gradcam(self.model, default_target_layers(self.model), class_id,
                                       self.image(name)[0], method=method)
        return self._cache[key]


def _label(class_id: int) -> str:
    return class_name(class_id)


def is_dog(class_id: int) -> bool:
    """ImageNet's dog breeds are the classes 151 (Chihuahua) to 268 (Mexican hairless)."""
    return 151 <= int(class_id) <= 268


def is_cat(class_id: int) -> bool:
    """ImageNet's domestic cats are the classes 281 (tabby) to 285 (Egyptian cat)."""
    return 281 <= int(class_id) <= 285


def _top_is(kind: str, test: Callable[[int], bool], image: str, minimum: float):
    def check(lab: Lab) -> Tuple[str, bool]:
        top = lab.top(image)
        p = float(lab.probabilities(image)[top])
        return f"{_label(top)}, p = {p:.2f}", test(top) and p >= minimum
    return check


def _peak_on(image: str, class_of: Callable[[Lab], int], region: str, minimum: float):
    """The class's map peaks in ``region``, and the model gives the class at least ``minimum``.

    The probability matters: a model that does not see a dog at all (random weights) has no
    dog map worth reading, wherever its peak happens to fall.
    """
    def check(lab: Lab) -> Tuple[str, bool]:
        class_id = class_of(lab)
        p = float(lab.probabilities(image)[class_id])
        found = peak_region(lab.cam(image, class_id), image)
        text = "blank map" if found is None else (found or "no marked region")
        return f"{_label(class_id)} (p = {p:.3f}): {text}", found == region and p >= minimum
    return check


def _top_dog(image: str) -> Callable[[Lab], int]:
    """The most probable dog breed (the top class when it is a dog)."""
    return lambda lab: 151 + int(lab.probabilities(image)[151:269].argmax())


def _top_cat(image: str) -> Callable[[Lab], int]:
    return lambda lab: 281 + int(lab.probabilities(image)[281:286].argmax())


def _cascade_changes_gradcam(lab: Lab) -> Tuple[str, bool]:
    result = trust.randomisation_check(lab.model, default_target_layers, [245, 281], lab.image("both.png")[0],
                                 seeds=range(2), stages=3, progress=False)
    return f"mean Spearman {result['mean']:.2f} ({result['stages']})", bool(result["mean"] < 0.5)


def _cascade_keeps_guided_backprop(lab: Lab) -> Tuple[str, bool]:
    x = lab.image("both.png")[0]
    guided = trust.guided_model(lab.model)
    _, randomised = trust.randomised_model(lab.model, 0, 3)
    guided_random = trust.guided_model(randomised)
    del randomised
    rho = float(np.mean([trust.spearman(trust.guided_backprop(lab.model, c, x, guided),
                                        trust.guided_backprop(guided_random, c, x, guided_random))
                         for c in (245, 281)]))
    return f"mean Spearman {rho:.2f}", rho > 0.7


def _faithful(curve_name: str):
    def check(lab: Lab) -> Tuple[str, bool]:
        curve = getattr(trust, f"{curve_name}_curve")
        x = lab.image("both.png")[0]
        top = lab.top("both.png")
        heatmap = lab.cam("both.png", top)
        random_map = np.random.default_rng(0).random(heatmap.shape).astype(np.float32)
        ours = trust.area_under(curve(lab.model, x, top, heatmap))
        chance = trust.area_under(curve(lab.model, x, top, random_map))
        better = ours < chance if curve_name == "deletion" else ours > chance
        return f"AUC GradCAM {ours:.3f}, random {chance:.3f}", bool(better)
    return check


def _eigencam_ignores_the_class(lab: Lab) -> Tuple[str, bool]:
    difference = float(np.abs(lab.cam("both.png", 281, "EigenCAM") - lab.cam("both.png", 245, "EigenCAM")).max())
    return f"largest difference {difference:.2g}", difference == 0.0


def _not_specific(image: str, improbable: int, minimum: float):
    """An improbable class's map follows the map of the most probable cat class (Spearman >= ``minimum``)."""
    def check(lab: Lab) -> Tuple[str, bool]:
        cat = _top_cat(image)(lab)
        p = float(lab.probabilities(image)[improbable])
        rho = trust.spearman(lab.cam(image, improbable), lab.cam(image, cat))
        return (f"{_label(improbable)} (p = {p:.2g}) vs {_label(cat)}: Spearman {rho:.2f}",
                bool(rho >= minimum and p < 0.005))
    return check


def _guided_ignores_the_class(lab: Lab) -> Tuple[str, bool]:
    x = lab.image("both.png")[0]
    guided = trust.guided_model(lab.model)
    dog = _top_dog("both.png")(lab)
    rho = trust.spearman(trust.guided_backprop(lab.model, dog, x, guided), trust.guided_backprop(lab.model, 918, x, guided))
    return f"{_label(dog)} vs 918 · crossword puzzle: Spearman {rho:.2f}", bool(rho >= 0.8)


def _earlier_layer_less_specific(lab: Lab) -> Tuple[str, bool]:
    x = lab.image("both.png")[0]
    dog = _top_dog("both.png")(lab)
    (last, last_layer), (earlier, earlier_layer) = list(layer_choices(lab.model).items())[:2]
    shares = [share_in(gradcam(lab.model, [layer], dog, x), "both.png", "dog") for layer in (last_layer, earlier_layer)]
    return (f"{_label(dog)}, share on the dog: {last} {shares[0]:.0%}, {earlier} {shares[1]:.0%} "
            f"(a uniform map: {shares[0].area:.0%})", bool(shares[1] < shares[0]))


def _shortcut_found(lab: Lab) -> Tuple[str, bool]:
    """Episode 7's small CNN trained with the stamp: it follows the stamp, and its GradCAM peaks there."""
    key = ("shortcut",)
    if key not in lab._cache:
        lab._cache[key] = shortcut.run_experiment(seed=0, progress=False).scores
    scores = lab._cache[key]
    moved = scores["shortcut: stamp on dogs"] - scores["shortcut: stamp on cats"]
    peaks = scores["shortcut: peaks within 10 px of stamp"]
    return (f"accuracy {scores['shortcut: stamp on dogs']:.2f} -> {scores['shortcut: stamp on cats']:.2f} when the "
            f"stamp moves; {peaks:.0%} of maps peak on it"), bool(moved >= 0.5 and peaks >= 0.8)


def _frozen_backbone_misses(lab: Lab) -> Tuple[str, bool]:
    """The lesson's model, frozen, with a new linear head: it learns the stamp, and GradCAM misses it."""
    scores = shortcut.frozen_backbone_experiment(lab.model, seed=0)
    moved = scores["frozen: stamp on dogs"] - scores["frozen: stamp on cats"]
    peaks = scores["frozen: peaks within 10 px of stamp"]
    return (f"accuracy {scores['frozen: stamp on dogs']:.2f} -> {scores['frozen: stamp on cats']:.2f} when the stamp "
            f"moves; {peaks:.0%} of maps peak on it"), bool(moved >= 0.3 and peaks <= 0.5)


#: The pages, by what they teach: claims name them through this table, so that a renamed or
#: renumbered page is one line to change here. An episode is named by its file in episodes/;
#: a self-study page (outside the workshop's schedule) by its path, learners/NAME.md.
EPISODES: Dict[str, str] = {
    "model": "02-pretrained-model.md",
    "gradcam": "03-gradcam-by-hand.md",
    "reading": "04-reading-maps.md",
    "exploring": "05-exploring.md",
    "methods": "06-other-methods.md",
    "trust": "07-trust.md",
    "own model": "08-your-own-model.md",
    "shortcut": "09-shortcut.md",
    "in depth": "learners/gradcam-in-depth.md",
    "testing": "learners/testing-explanations.md",
    "missed shortcut": "learners/when-gradcam-misses.md",
}


def _in(*keys: str) -> str:
    """The pages for ``keys`` (of ``EPISODES``), as a claim names them: the first holds the sentence."""
    return ", ".join(EPISODES[key] for key in keys)


#: The lesson's claims about what the model shows. Each names its pages (the first one named
#: holds ``sentence`` word for word) and what it expects; ``python lesson.py preflight`` runs them.
CLAIMS: List[Claim] = [
    Claim("both.png: the top class is a dog breed",
          _in("reading"), "because the model's top class is a dog",
          "a class in 151..268 with p >= 0.05", _top_is("dog", is_dog, "both.png", 0.05)),
    Claim("both.png: the top dog class's peak is on the dog",
          _in("trust", "reading"), "A map that lands on the dog *feels* right",
          "p >= 0.05 and peak in the dog box", _peak_on("both.png", _top_dog("both.png"), "dog", 0.05)),
    Claim("both.png: the top cat class's peak is on the cat",
          _in("reading", "in depth"), "class's evidence is concentrated on the cat",
          "p >= 0.005 and peak in the cat box", _peak_on("both.png", _top_cat("both.png"), "cat", 0.005)),
    Claim("dog_cat.jfif: the top class is a dog breed",
          _in("model"), "a kitten in the photo can still sit far down the list",
          "a class in 151..268 with p >= 0.05", _top_is("dog", is_dog, "dog_cat.jfif", 0.05)),
    Claim("dog_cat.jfif: the top dog class's peak is on the dog",
          _in("in depth"), "check whether the predicted class and tabby peak on different animals",
          "p >= 0.05 and peak in the dog box", _peak_on("dog_cat.jfif", _top_dog("dog_cat.jfif"), "dog", 0.05)),
    Claim("an improbable class's GradCAM is not specific: 918's map follows the reveal class's",
          _in("in depth", "exploring"), "GradCAM of an improbable class is often not specific to that class",
          "p(918) < 0.005 and Spearman >= 0.5 with the most probable cat class's map",
          _not_specific("both.png", 918, 0.5)),
    Claim("layers: one layer earlier, the predicted class's map is less specific",
          _in("in depth", "exploring"), "what earlier layers lose is class specificity",
          "a smaller share on the animal at the second layer than at the last",
          _earlier_layer_less_specific),
    Claim("EigenCAM gives the same map for every class",
          _in("methods", "testing"), "The difference is 0",
          "largest difference 0", _eigencam_ignores_the_class),
    Claim("guided backprop is class-insensitive: its maps for two classes correlate highly",
          _in("trust", "testing"), "It very nearly ignores the top of the model, and with it the class",
          "Spearman >= 0.8 between the top class's and 918's maps", _guided_ignores_the_class),
    Claim("sanity check: GradCAM changes when the top is randomised",
          _in("testing", "trust"), "Adebayo et al. found GradCAM passing this test and guided backprop failing it",
          "mean Spearman < 0.5", _cascade_changes_gradcam),
    Claim("sanity check: guided backprop barely changes when the top is randomised",
          _in("trust", "testing"), "It very nearly ignores the top of the model",
          "mean Spearman > 0.7", _cascade_keeps_guided_backprop),
    Claim("shortcut: the stamp model follows the stamp, and its GradCAM peaks on it",
          _in("shortcut"), "the maps only raised the suspicion",
          "accuracy falls by >= 0.5 when the stamp moves; >= 80% of maps peak within 10 px of it", _shortcut_found),
    Claim("shortcut: a frozen backbone with a new linear head learns the stamp, and GradCAM misses it",
          _in("shortcut", "missed shortcut"), "a model that uses the stamp while its GradCAM looks elsewhere",
          "accuracy falls by >= 0.3 when the stamp moves; <= 50% of maps peak within 10 px of it",
          _frozen_backbone_misses),
    Claim("deletion: GradCAM beats a random map on both.png",
          _in("testing", "trust"), "any method worth using must beat it",
          "smaller AUC than the random map", _faithful("deletion")),
    Claim("insertion: GradCAM beats a random map on both.png",
          _in("testing"), "any method worth using must beat it",
          "larger AUC than the random map", _faithful("insertion")),
]


def claim(name: str) -> Claim:
    """The claim called ``name`` (see ``CLAIMS``)."""
    for item in CLAIMS:
        if item.name == name:
            return item
    raise KeyError(f"no claim called {name!r}; the claims are: " + "; ".join(c.name for c in CLAIMS))


def check_claim(name: str, model, lab: Optional[Lab] = None) -> Tuple[str, bool]:
    """Run one named claim on ``model`` and return (observed, ok). Notebooks print it."""
    return claim(name).check(lab if lab is not None and lab.model is model else Lab(model))


def show_claim(name: str, model, lab: Optional[Lab] = None) -> None:
    """Print a claim's outcome, for a notebook: what the text expects and what this model shows."""
    item = claim(name)
    observed, ok = check_claim(name, model, lab)
    print(f"{'as the text says' if ok else 'NOT as the text says'}: {item.name}\n"
          f"  expected {item.expected}; this model: {observed}")


def check_claims(model, names: Optional[Sequence[str]] = None) -> List[Dict[str, object]]:
    """Run the claims (all, or those named) on ``model``; one row per claim.

    Rows hold ``claim``, ``episode``, ``sentence``, ``expected``, ``observed``, ``ok`` and
    ``error``. A claim whose check raises is a failed claim, with the error as its observation
    and ``error`` True: the model was not seen, so the text is not known to be wrong.
    """
    lab = Lab(model)
    rows = []
    for item in CLAIMS if names is None else [claim(n) for n in names]:
        error = None
        try:
            observed, ok = item.check(lab)
        except Exception as raised:                   # noqa: BLE001 - reported, never hidden
            error, ok = raised, False
            observed = f"error: {type(raised).__name__}: {raised}"
        rows.append({"claim": item.name, "episode": item.episode, "sentence": item.sentence,
                     "expected": item.expected, "observed": observed, "ok": bool(ok), "error": error is not None})
    return rows


def format_table(rows: Sequence[Dict[str, object]]) -> str:
    """The rows of ``check_claims`` as a plain-text table."""
    widths = [max(len(str(r[k])) for r in rows) if rows else 5 for k in ("claim", "expected", "observed")]
    widths = [min(max(w, len(h)), 72) for w, h in zip(widths, ("claim", "expected", "observed"))]
    lines = [f"{'claim':{widths[0]}s}  {'expected':{widths[1]}s}  {'observed':{widths[2]}s}  ok"]
    for row in rows:
        lines.append(f"{str(row['claim'])[:72]:{widths[0]}s}  {str(row['expected'])[:64]:{widths[1]}s}  "
                     f"{str(row['observed'])[:64]:{widths[2]}s}  {'yes' if row['ok'] else 'NO'}")
    return "\n".join(lines)


def preflight(model_name: Optional[str] = None, names: Optional[Sequence[str]] = None) -> int:
    """Run every claim on the model learners will use; print the table; 0 when all hold, else 1.

    ``model_name`` defaults to ``LESSON_MODEL`` (ResNet-50 with its real weights when they can be had);
    ``names`` picks some claims (default: all).
    """
    torch.manual_seed(0)                     # a random-weights model is then the same every run
    model = load_model(model_name)
    print(f"Checking the lesson's claims against {model.lesson_name} ...", flush=True)
    rows = check_claims(model, names)
    print(format_table(rows))
    failed = [row for row in rows if not row["ok"] and not row["error"]]
    broken = [row for row in rows if row["error"]]
    if not failed and not broken:
        print(f"\nAll {len(rows)} claims hold for {model.lesson_name}: the text matches what learners will see.")
        return 0
    if broken:
        print(f"\n{len(broken)} of {len(rows)} claims could NOT be checked: an error stopped them before the "
              f"model was seen, so fix the cause and run the pre-flight again (missing lesson images: run "
              f"`python -m helpers.setup` with internet, or set LESSON_DATA_MIRROR):")
        for row in broken:
            print(f"- {row['claim']}: {row['observed']}")
    if failed:
        print(f"\n{len(failed)} of {len(rows)} claims do NOT hold for {model.lesson_name}. Before teaching, "
              f"reword these sentences (or tell learners what to expect instead):")
        for row in failed:
            print(f"- {row['episode']}: \"{row['sentence']}\"\n    ({row['claim']}: expected {row['expected']}, "
                  f"observed {row['observed']})")
    return 1


def draw_regions(path: Optional[Path] = None, size: int = 224):
    """A figure of the lesson images with their regions drawn; saved to ``path`` when given."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    names = list(_all_regions())
    columns = 2
    rows = -(-len(names) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 4.6 * rows))
    colours = plt.get_cmap("tab10").colors
    for axis in np.atleast_1d(axes).flat[len(names):]:
        axis.axis("off")
    for axis, name in zip(np.atleast_1d(axes).flat, names):
        _, rgb = load_image(fetch(name), size=size)
        height, width = rgb.shape[:2]
        axis.imshow(rgb)
        for index, (region, boxes) in enumerate(regions(name).items()):
            colour = colours[index % len(colours)]
            for number, (left, top, right, bottom) in enumerate(boxes):
                axis.add_patch(Rectangle((left * width, top * height), (right - left) * width, (bottom - top) * height,
                                         fill=False, edgecolor=colour, linewidth=2,
                                         linestyle="-" if index < 2 else "--"))
                if number == 0:
                    axis.text(left * width + 3, top * height + 12, f"{index + 1}. {region}", color="white",
                              fontsize=8, bbox=dict(facecolor=colour, alpha=0.8, pad=1, edgecolor="none"))
        axis.set_title(name)
        axis.axis("off")
    figure.suptitle("Regions of the lesson images (data/regions.json)\nwhere boxes overlap, the lower number wins")
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=110)
    return figure


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m helpers.claims [--model NAME] [--figure PATH]``: the pre-flight, or the regions figure."""
    import argparse

    parser = argparse.ArgumentParser(description="Check the lesson's claims against a model (the pre-flight).")
    parser.add_argument("--model", default=None, help="a load_model name; default: LESSON_MODEL or resnet50")
    parser.add_argument("--claim", action="append", dest="names", metavar="NAME",
                        help="check only this claim (repeatable); default: every claim")
    parser.add_argument("--figure", type=Path, default=None, help="draw the regions figure to this PNG and stop")
    args = parser.parse_args(argv)
    try:
        if args.figure is not None:
            return _figure(args.figure)
        for name in args.names or []:
            claim(name)                                  # a misspelt claim is named before the model loads
        return preflight(args.model, args.names)
    except (KeyError, ValueError, OSError) as error:     # an unknown model or claim, an unwritable path: one line
        text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        print(f"python -m helpers.claims: error: {text}", file=sys.stderr)
        return 2


def _figure(path: Path) -> int:
    """Draw the regions figure to ``path``, making its folder when missing."""
    import matplotlib

    matplotlib.use("Agg")
    path.parent.mkdir(parents=True, exist_ok=True)
    draw_regions(path)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
