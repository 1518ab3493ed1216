"""Catch a shortcut: train a small CNN that learns a stamp instead of the animal, and see it in GradCAM.

The data are 64 px crops of the dogs and cats in the lesson's photos, with random crops (1.0-1.3
times the animal's box), flips and colour jitter. Training crops come from both.png and dogs.png;
the test crops come from dog_cat.jfif, a photo training never saw (``seen_*``: fresh crops of the
training photos, to show what a test on them would measure). On every training image labelled
"dog" a small two-colour checker (the *stamp*) sits near the top-left corner. A fifth of the
training labels are wrong, and the stamp follows the label, so the stamp is the more reliable
cue: a shortcut wins when it is the more reliable cue.

``run_experiment`` trains a small CNN with the stamp and one without (the fix), offline on a
CPU, whatever the lesson's model is. ``frozen_backbone_experiment`` is the negative case: a
pretrained model, frozen, with a new linear head, learns the stamp while GradCAM misses it.

>>> from helpers.shortcut import make_data, small_cnn, train, accuracy, stamp      # doctest: +SKIP
>>> data = make_data(seed=0)                                                         # doctest: +SKIP
>>> model = train(stamp(data.train_images, data.train_labels == DOG), data.train_labels)  # doctest: +SKIP
>>> accuracy(model, stamp(data.test_images, data.test_labels == DOG), data.test_labels)  # doctest: +SKIP
1.0
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image
from torch import nn

from .cam import compute_cams
from .downloads import fetch
from .images import IMAGENET_MEAN, IMAGENET_STD
from .modelstate import model_device, shared_twin, unwrap
from .models import pooled_layer_and_classifier
from .viz import overlay

#: The two classes of the small model, by id.
CLASSES = ("cat", "dog")
CAT, DOG = 0, 1
#: Side of the square crops, in pixels.
SIZE = 64
#: The stamp: a 10 px checker of two colours (magenta and green, 2 px squares), 10 px in from
#: the top-left corner. STAMP_BOX is [left, top, right, bottom) in pixels of a 64 px image.
STAMP_BOX = (10, 10, 20, 20)
STAMP_COLOURS = ((1.0, 0.0, 1.0), (0.0, 0.9, 0.0))
#: Where the animals are in the lesson's photos: [left, top, right, bottom] in pixels of the
#: original files, drawn by eye (they agree with the boxes in data/regions.json). dogs.png's
#: six dogs are two boxes of three.
ANIMALS: Dict[str, Dict[str, List[Tuple[int, int, int, int]]]] = {
    "both.png": {"dog": [(76, 12, 166, 145)], "cat": [(40, 116, 204, 224)]},
    "dog_cat.jfif": {"dog": [(0, 12, 160, 177)], "cat": [(148, 32, 240, 177)]},
    "dogs.png": {"dog": [(28, 110, 190, 280), (178, 110, 328, 280)]},
}


#: The photos the training crops come from, and the one the test crops come from (never trained on).
TRAIN_PHOTOS = ("both.png", "dogs.png")
TEST_PHOTOS = ("dog_cat.jfif",)


@dataclass
class ShortcutData:
    """Crops without any stamp, and their labels (0 = cat, 1 = dog).

    ``train_labels`` hold the label noise (``train_flipped`` says which labels are wrong);
    ``test_labels`` and ``seen_labels`` are all right. The test crops come from ``TEST_PHOTOS``,
    which training never saw; the ``seen`` crops are fresh crops of ``TRAIN_PHOTOS``.
    ``test_windows`` says where each test crop lies in its photo: (left, top, side, mirrored),
    the first three as fractions of the photo's width, height and width.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    train_flipped: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    seen_images: torch.Tensor
    seen_labels: torch.Tensor
    test_windows: np.ndarray


def _photos() -> Dict[str, Image.Image]:
    return {name: Image.open(fetch(name)).convert("RGB") for name in ANIMALS}


def _window(photo: Image.Image, box: Tuple[int, int, int, int], rng: np.random.Generator) -> Tuple[float, float, float]:
    """(x0, y0, side) in pixels: a square 1.0-1.3 times the box's longer side, placed at random around it."""
    left, top, right, bottom = box
    width, height = photo.size
    side = min(max(right - left, bottom - top) * rng.uniform(1.0, 1.3), width, height)
    centre_x = (left + right) / 2 + rng.uniform(-1, 1) * max(0.0, side - (right - left)) / 2
    centre_y = (top + bottom) / 2 + rng.uniform(-1, 1) * max(0.0, side - (bottom - top)) / 2
    x0 = float(np.clip(centre_x - side / 2, 0, width - side))
    y0 = float(np.clip(centre_y - side / 2, 0, height - side))
    return x0, y0, side


def random_crop(photo: Image.Image, box: Tuple[int, int, int, int], rng: np.random.Generator) -> np.ndarray:
    """A square crop around ``box``, 1.0-1.3 times its longer side, scaled to 64 px: float32 [64, 64, 3]."""
    x0, y0, side = _window(photo, box, rng)
    crop = photo.resize((SIZE, SIZE), Image.Resampling.BILINEAR, box=(x0, y0, x0 + side, y0 + side))
    return np.asarray(crop, dtype=np.float32) / 255.0


def jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random flip, and brightness, contrast and saturation each changed by up to 20%."""
    return _jitter(image, rng)[0]


def _jitter(image: np.ndarray, rng: np.random.Generator) -> Tuple[np.ndarray, bool]:
    mirrored = bool(rng.random() < 0.5)
    if mirrored:
        image = image[:, ::-1]
    image = image * rng.uniform(0.8, 1.2)
    image = (image - image.mean()) * rng.uniform(0.8, 1.2) + image.mean()
    grey = image.mean(axis=2, keepdims=True)
    image = grey + (image - grey) * rng.uniform(0.8, 1.2)
    return np.clip(image, 0.0, 1.0), mirrored


def _crops(photos: Dict[str, Image.Image], names: Sequence[str], animal: str, count: int,
           rng: np.random.Generator) -> Tuple[np.ndarray, List[Tuple[str, float, float, float, bool]]]:
    boxes = [(name, box) for name in names for box in ANIMALS[name].get(animal, [])]
    if not boxes:
        raise ValueError(f"none of the photos {', '.join(names)} has a {animal} in it")
    images, windows = [], []
    for i in rng.integers(len(boxes), size=count):
        name, box = boxes[i]
        photo = photos[name]
        x0, y0, side = _window(photo, box, rng)
        crop = photo.resize((SIZE, SIZE), Image.Resampling.BILINEAR, box=(x0, y0, x0 + side, y0 + side))
        image, mirrored = _jitter(np.asarray(crop, dtype=np.float32) / 255.0, rng)
        images.append(image)
        width, height = photo.size
        windows.append((name, x0 / width, y0 / height, side / width, mirrored))
    return np.stack(images), windows


def _as_batch(cats: np.ndarray, dogs: np.ndarray) -> Tuple[torch.Tensor, torch.Tensor]:
    images = torch.from_numpy(np.concatenate([cats, dogs]).transpose(0, 3, 1, 2).copy())
    return images, torch.tensor([CAT] * len(cats) + [DOG] * len(dogs))


def make_data(seed: int = 0, n_train: int = 300, n_test: int = 50, noise: float = 0.2) -> ShortcutData:
    """``n_train`` and ``n_test`` crops per class, no stamp yet; ``noise``: the share of wrong training labels.

    Training crops come from ``TRAIN_PHOTOS``, test crops from ``TEST_PHOTOS`` (never trained
    on), and ``n_test`` more per class of the training photos as ``seen_images``.
    """
    for name, count in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise ValueError(f"{name} is the number of crops per class: a whole number of at least 1, got {count!r}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float, np.number)) or not 0 <= noise <= 1:
        raise ValueError(f"noise is the share of wrong training labels: a number from 0 to 1 (0.2 is a fifth), "
                         f"got {noise!r}")
    rng = np.random.default_rng(seed)
    photos = _photos()
    train_images, train_labels = _as_batch(*(_crops(photos, TRAIN_PHOTOS, a, n_train, rng)[0] for a in ("cat", "dog")))
    (cats, cat_windows), (dogs, dog_windows) = (_crops(photos, TEST_PHOTOS, a, n_test, rng) for a in ("cat", "dog"))
    test_images, test_labels = _as_batch(cats, dogs)
    seen_images, seen_labels = _as_batch(*(_crops(photos, TRAIN_PHOTOS, a, n_test, rng)[0] for a in ("cat", "dog")))
    flipped = torch.from_numpy(rng.random(len(train_labels)) < noise)
    windows = np.array([w[1:] for w in cat_windows + dog_windows], dtype=np.float32)
    return ShortcutData(train_images, torch.where(flipped, 1 - train_labels, train_labels), flipped,
                        test_images, test_labels, seen_images, seen_labels, windows)


def stamp(images: torch.Tensor, where: Optional[torch.Tensor] = None) -> torch.Tensor:
    """A copy of ``images`` [N, 3, 64, 64] with the checker stamped on those where ``where`` is True (all by default)."""
    left, top, right, bottom = STAMP_BOX
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3 \
            or images.shape[2] < bottom or images.shape[3] < right:
        shape = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"stamp needs RGB images [N, 3, H, W] of at least {bottom}x{right} pixels (the stamp "
                         f"covers pixels {top} to {bottom - 1} down and {left} to {right - 1} across), got {shape}")
    stamped = images.clone()
    rows = torch.arange(bottom - top)[:, None] // 2
    cols = torch.arange(right - left)[None, :] // 2
    checker = ((rows + cols) % 2).bool()
    patch = torch.where(checker, torch.tensor(STAMP_COLOURS[0])[:, None, None],
                        torch.tensor(STAMP_COLOURS[1])[:, None, None])
    chosen = torch.ones(len(images), dtype=torch.bool) if where is None else where.bool()
    stamped[chosen, :, top:bottom, left:right] = patch
    return stamped


def small_cnn() -> nn.Sequential:
    """Four conv-BN-ReLU blocks (16, 32, 64, 64 channels), two max-pools, global average pooling, a linear layer.

    ``model.conv4`` is the last convolutional block: GradCAM looks there (16x16 for 64 px).
    """
    def block(channels_in: int, channels_out: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False),
                             nn.BatchNorm2d(channels_out), nn.ReLU(inplace=True))

    return nn.Sequential(OrderedDict([
        ("conv1", block(3, 16)), ("pool1", nn.MaxPool2d(2)),
        ("conv2", block(16, 32)), ("pool2", nn.MaxPool2d(2)),
        ("conv3", block(32, 64)), ("conv4", block(64, 64)),
        ("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("fc", nn.Linear(64, 2)),
    ]))


def train(images: torch.Tensor, labels: torch.Tensor, model: Optional[nn.Module] = None, epochs: int = 8,
          seed: int = 0, batch_size: int = 32, lr: float = 3e-3, progress: bool = True,
          desc: str = "training") -> nn.Module:
    """Train ``model`` (a new ``small_cnn()`` by default) with Adam and cross-entropy; returns it in eval mode.

    A progress bar shows each epoch. The same ``seed`` gives the same starting weights and order,
    and the same model on any number of cores: training runs on one CPU thread, since the order
    in which threads add up a sum changes the last bits, and over hundreds of steps the model
    (2 threads against 1: 100% against 59% of maps peaking near the stamp, for one seed).
    The caller's random generator and thread count are left as they were.
    """
    if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError(f"train(images, labels, model=None): images and labels must be tensors, got "
                        f"{type(images).__name__} and {type(labels).__name__} (the model comes third, as model=)")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return _train(images, labels, model, epochs, seed, batch_size, lr, progress, desc)
    finally:
        torch.set_num_threads(threads)


def _train(images: torch.Tensor, labels: torch.Tensor, model: Optional[nn.Module], epochs: int, seed: int,
           batch_size: int, lr: float, progress: bool, desc: str) -> nn.Module:
    from tqdm.auto import tqdm

    if model is None:
        model = small_cnn()
    generator = torch.Generator().manual_seed(seed)
    # channels-last memory order: the same model and numbers, about half the CPU time per epoch
    model = model.to(memory_format=torch.channels_last)
    images = images.contiguous(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    bar = tqdm(range(epochs), desc=desc, disable=not progress, unit="epoch")
    for _ in bar:
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for start in range(0, len(images), batch_size):
            batch = order[start:start + batch_size]
            optimiser.zero_grad()
            loss = loss_fn(model(images[batch]), labels[batch])
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
        bar.set_postfix(loss=f"{total / len(images):.3f}")
    return model.eval()


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of ``images`` the model labels right."""
    with torch.no_grad():
        right = int((model.eval()(images).argmax(dim=1) == labels).sum())
    return right / len(labels)           # a count over a count: prints as 0.53, not 0.5299999713897705


def dog_maps(model: nn.Module, images: torch.Tensor) -> np.ndarray:
    """GradCAM for "dog" at the last convolutional block (``model.conv4``): float32 [N, 64, 64] in [0, 1]."""
    maps, _ = compute_cams(model, [model.conv4], [DOG] * len(images), images)
    return maps


def in_stamp(maps: np.ndarray) -> np.ndarray:
    """Each map's mean value inside the stamp's box."""
    left, top, right, bottom = STAMP_BOX
    return maps[:, top:bottom, left:right].mean(axis=(1, 2))


def peak_distance(maps: np.ndarray) -> np.ndarray:
    """How far (in pixels) each map's hottest pixel lies from the stamp's box; 0 inside it."""
    left, top, right, bottom = STAMP_BOX
    flat = maps.reshape(len(maps), -1).argmax(axis=1)
    rows, cols = np.divmod(flat, maps.shape[2])
    dx = np.maximum(np.maximum(left - cols, cols - (right - 1)), 0)
    dy = np.maximum(np.maximum(top - rows, rows - (bottom - 1)), 0)
    return np.hypot(dx, dy)


def animal_boxes(windows: np.ndarray, labels: torch.Tensor, photo: str = TEST_PHOTOS[0]) -> np.ndarray:
    """Where each crop's own animal lies in it: [left, top, right, bottom] in the crop's pixels, float32 [N, 4].

    ``windows`` and ``labels`` are ``ShortcutData.test_windows`` and ``test_labels``; the boxes are
    ``ANIMALS``' boxes of ``photo``, moved, scaled and mirrored as each crop was, and clipped to it.
    A table of them is what ``helpers.audit`` takes as regions.
    """
    width, height = Image.open(fetch(photo)).size
    boxes = []
    for (left, top, side, mirrored), label in zip(np.asarray(windows, dtype=np.float64), labels.tolist()):
        x0, y0, x1, y1 = ANIMALS[photo][CLASSES[int(label)]][0]
        scale = SIZE / (side * width)                      # a crop is side x side of the photo's width
        xs = (np.array([x0, x1]) - left * width) * scale
        ys = (np.array([y0, y1]) - top * height) * scale
        if mirrored:
            xs = SIZE - xs[::-1]
        boxes.append(np.clip([xs[0], ys[0], xs[1], ys[1]], 0, SIZE))
    return np.array(boxes, dtype=np.float32).reshape(-1, 4)


@dataclass
class ShortcutResult:
    """The two models, the test images (every one stamped) and their "dog" maps, and the measurements."""

    shortcut_model: nn.Module
    fixed_model: nn.Module
    test_images: torch.Tensor
    test_labels: torch.Tensor
    shortcut_maps: np.ndarray
    fixed_maps: np.ndarray
    scores: Dict[str, float]


def run_experiment(seed: int = 0, progress: bool = True, epochs: int = 8) -> ShortcutResult:
    """The whole experiment for one seed: data, both models, accuracies, GradCAM maps and scores.

    ``scores`` holds, on crops of the photo training never saw: the accuracies with the stamp
    on the dogs (as in training) and moved to the cats, for both models, and without any stamp;
    the fix's accuracy on fresh crops of its training photos (what a test on them measures); the
    median over stamped test images of the mean "dog" GradCAM inside the stamp's box, and the
    share of maps whose peak is within 10 px of that box; and where the fix's "dog" maps of
    the unstamped dog images lie: the median share on the dog and on the grass, each with its
    median area (the chance level).
    """
    data = make_data(seed)
    dogs_train, dogs_test = data.train_labels == DOG, data.test_labels == DOG
    shortcut_model = train(stamp(data.train_images, dogs_train), data.train_labels, epochs=epochs,
                           seed=seed, progress=progress, desc="with the stamp")
    fixed_model = train(data.train_images, data.train_labels, epochs=epochs, seed=seed,
                        progress=progress, desc="without the stamp (the fix)")
    on_dogs, on_cats = stamp(data.test_images, dogs_test), stamp(data.test_images, ~dogs_test)
    everywhere = stamp(data.test_images)
    shortcut_maps, fixed_maps = dog_maps(shortcut_model, everywhere), dog_maps(fixed_model, everywhere)
    scores = {
        "shortcut: stamp on dogs": accuracy(shortcut_model, on_dogs, data.test_labels),
        "shortcut: stamp on cats": accuracy(shortcut_model, on_cats, data.test_labels),
        "fix: stamp on dogs": accuracy(fixed_model, on_dogs, data.test_labels),
        "fix: stamp on cats": accuracy(fixed_model, on_cats, data.test_labels),
        "fix: no stamp, new photo": accuracy(fixed_model, data.test_images, data.test_labels),
        "fix: no stamp, training photos": accuracy(fixed_model, data.seen_images, data.seen_labels),
        "shortcut: GradCAM in stamp (median)": float(np.median(in_stamp(shortcut_maps))),
        "fix: GradCAM in stamp (median)": float(np.median(in_stamp(fixed_maps))),
        "shortcut: peaks within 10 px of stamp": float(np.mean(peak_distance(shortcut_maps) <= 10)),
        "fix: peaks within 10 px of stamp": float(np.mean(peak_distance(fixed_maps) <= 10)),
    }
    return ShortcutResult(shortcut_model, fixed_model, everywhere, data.test_labels, shortcut_maps, fixed_maps, scores)


# --- the negative case: a frozen pretrained backbone with a new linear head ----------------------

#: Side, in pixels, to which ``frozen_backbone`` scales the 64 px crops for the ImageNet model. ImageNet
#: models work at this size too, and it costs half of 224 px per crop (ResNet-50: less than half the
#: time), for crops that hold 64 px of detail either way. Its last grid is 5x5 (224 px: 7x7).
FROZEN_SIZE = 160
#: Crops per forward pass of the frozen backbone: bounded memory.
FROZEN_BATCH = 20


class _FromCrops(nn.Module):
    """64 px crops in [0, 1] -> what an ImageNet model eats: ``size`` px, normalised with ImageNet's mean and std.

    The result is in channels-last memory order: the same numbers, less CPU time in a CNN.
    """

    def __init__(self, size: int = FROZEN_SIZE) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        mean = torch.as_tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).reshape(1, 3, 1, 1)
        std = torch.as_tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).reshape(1, 3, 1, 1)
        return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def frozen_backbone(backbone: nn.Module, size: int = FROZEN_SIZE) -> Tuple[nn.Sequential, nn.Module, str]:
    """A frozen twin of an ImageNet model that takes 64 px crops (scaled to ``size``), and where its head goes.

    Returns ``(model, pooled_layer, head_name)``: ``model[1]`` is the twin, in eval mode; its
    classifier (``head_name``, such as ``"fc"``) is to be replaced by a new linear layer;
    ``pooled_layer`` is the layer it averages (GradCAM there is CAM). The twin shares the
    backbone's weights (``shared_twin``: nothing is copied), and nothing trains them: only a new
    head learns. Replacing the twin's head leaves the caller's ``backbone`` as it was.
    """
    inner = shared_twin(unwrap(backbone)).eval()
    pooled, classifier = pooled_layer_and_classifier(inner)
    head_name = next(name for name, module in inner.named_modules() if module is classifier)
    return nn.Sequential(_FromCrops(size), inner), pooled, head_name


def _pooled_features(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """What the head reads, for each image: ``model`` (its head an ``nn.Identity``) in batches, without a graph."""
    device = model_device(model)
    with torch.no_grad():
        return torch.cat([model(images[i:i + FROZEN_BATCH].to(device)).cpu()
                          for i in range(0, len(images), FROZEN_BATCH)])


def frozen_backbone_experiment(backbone: nn.Module, seed: int = 0, n_train: int = 150, n_test: int = 50,
                               epochs: int = 30, size: int = FROZEN_SIZE) -> Dict[str, float]:
    """The negative case: the backbone frozen, a new linear head trained on the stamped crops.

    Only the head learns, from the pooled features, computed once per crop. Tested on fresh
    crops of the training photos, since the question is only whether it uses the stamp.
    Returns the accuracies with the stamp on the dogs and moved to the cats, and, for GradCAM
    of "dog" at the pooled layer on stamped images, the median mean value inside the stamp and
    the share of maps peaking within 10 px of it. The backbone is left as it was.

    The backbone runs once per crop: the training crops (stamped where labelled "dog"), the
    test crops without a stamp, and the test crops all stamped, in batches of
    ``FROZEN_BATCH``. The last pass gives GradCAM's maps and those crops' scores at once;
    with the stamp on the dogs only (or the cats only), a crop's score is its stamped score or
    its unstamped one, so no crop runs twice.
    """
    data = make_data(seed, n_train=n_train, n_test=n_test)
    model, pooled, head_name = frozen_backbone(backbone, size)
    inner = model[1]
    classifier = inner.get_submodule(head_name)
    inner.set_submodule(head_name, nn.Identity())
    features = _pooled_features(model, stamp(data.train_images, data.train_labels == DOG))
    unstamped = _pooled_features(model, data.seen_images)
    with torch.random.fork_rng(devices=[]):          # seeded, without reseeding the caller's generator
        torch.manual_seed(seed)
        head = nn.Linear(classifier.in_features, len(CLASSES))
    optimiser = torch.optim.Adam(head.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(features), generator=generator)
        for start in range(0, len(features), 32):
            batch = order[start:start + 32]
            optimiser.zero_grad()
            nn.functional.cross_entropy(head(features[batch]), data.train_labels[batch]).backward()
            optimiser.step()
    device = model_device(inner)
    inner.set_submodule(head_name, head.requires_grad_(False).to(device))
    everywhere = stamp(data.seen_images)
    maps, stamped_scores = [], []
    for i in range(0, len(everywhere), FROZEN_BATCH):
        chunk = everywhere[i:i + FROZEN_BATCH]
        chunk_maps, chunk_scores = compute_cams(model, [pooled], [DOG] * len(chunk), chunk)
        maps.append(chunk_maps)
        stamped_scores.append(chunk_scores.cpu())
    maps, stamped_scores = np.concatenate(maps), torch.cat(stamped_scores)
    with torch.no_grad():
        unstamped_scores = head(unstamped.to(device)).cpu()
    dogs = (data.seen_labels == DOG)[:, None]

    def right(stamped_where: torch.Tensor) -> float:
        scores = torch.where(stamped_where, stamped_scores, unstamped_scores)
        return int((scores.argmax(dim=1) == data.seen_labels).sum()) / len(data.seen_labels)

    return {
        "frozen: stamp on dogs": right(dogs),
        "frozen: stamp on cats": right(~dogs),
        "frozen: GradCAM in stamp (median)": float(np.median(in_stamp(maps))),
        "frozen: peaks within 10 px of stamp": float(np.mean(peak_distance(maps) <= 10)),
    }


def show_side_by_side(images: torch.Tensor, labels: torch.Tensor, shortcut_maps: np.ndarray,
                      fixed_maps: np.ndarray, count: int = 6):
    """The same images (half cats, half dogs): the shortcut model's "dog" GradCAM above, below the model's
    trained without the stamp.

    A white square marks the stamp's box. Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    cats = np.flatnonzero(labels.numpy() == CAT)[: count // 2]
    dogs = np.flatnonzero(labels.numpy() == DOG)[: count - count // 2]
    chosen = list(cats) + list(dogs)
    figure, axes = plt.subplots(2, len(chosen), figsize=(2.0 * len(chosen), 5.2), squeeze=False)
    left, top, right, bottom = STAMP_BOX
    for column, index in enumerate(chosen):
        rgb = images[index].permute(1, 2, 0).numpy()
        for row, (maps, title) in enumerate([(shortcut_maps, "shortcut model"), (fixed_maps, "without the stamp")]):
            ax = axes[row, column]
            ax.imshow(overlay(rgb, maps[index], alpha=0.5))
            ax.add_patch(plt.Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False,
                                       edgecolor="white", linewidth=1))
            ax.set_title(f"{title}\non a {CLASSES[int(labels[index])]}", fontsize=9)
            ax.axis("off")
    figure.suptitle('GradCAM for "dog" on stamped test images (white square: the stamp)', fontsize=10)
    figure.tight_layout()
    return figure
