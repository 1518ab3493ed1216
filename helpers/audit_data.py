"""Reading a dataset for an audit: which images, in which order, in which shard, with which regions.

An audit (``helpers.audit``) reads a folder of images, a ``torch.utils.data.Dataset`` or a
``DataLoader``. This module turns each into items the audit can batch: an image tensor, its id,
its true label where known, its region mask where regions are given, and its error when it
could not be read (an unreadable file becomes an item with an error, never an exception).

- a **folder**, read as torchvision's ``ImageFolder`` reads it (one subfolder per class) or flat:
  the files are sorted by their path, so that every run, and every shard, sees the same order;
- **regions**: a CSV (or a ``pandas.DataFrame``) with one box per row, ``image, left, top, right,
  bottom`` in pixels of the image file (of the tensor, for a Dataset; several rows for one image
  make one region), or a folder of masks, one per image at the same relative path (any image
  suffix; non-zero pixels are inside).

>>> files = image_files("val")                                # doctest: +SKIP
>>> files.paths[:2], files.labels[:2], files.classes[:2]     # doctest: +SKIP
(['cat/001.jpg', 'cat/002.jpg'], [0, 0], ['cat', 'dog'])
>>> shard_positions(10, parse_shard("1/3"))
[1, 4, 7]
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image

from .audit_regions import IMAGE_SUFFIXES, Regions, is_image
from .images import LUMINANCE, open_rgb, preprocessing


Shard = Tuple[int, int]
PathLike = Union[str, "os.PathLike[str]"]


@dataclass
class ImageFiles:
    """A folder's images in a fixed order: ``paths`` relative to ``root`` (POSIX, sorted), each
    image's ``labels`` (None for a flat folder) and the class folders' names (``classes``)."""

    root: Path
    paths: List[str]
    labels: Optional[List[int]]
    classes: List[str]


def image_files(folder: PathLike, labels: Optional[Mapping[str, int]] = None) -> ImageFiles:
    """The images under ``folder``, sorted by relative path, with labels when it has class folders.

    A folder whose images all sit in subfolders is read as ``ImageFolder`` reads it: one class per
    subfolder, the classes numbered in sorted order (so ImageNet's ``val/n01440764/...`` folders get
    ImageNet's class ids). Subfolders named by integers (``245/``) get those ids, and ``labels``
    (subfolder name -> class id) says it for any names. Hidden files and files of other suffixes
    are left out.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"no folder at {root}" if not root.exists() else f"{root} is a file, not a folder "
                                f"of images; pass the folder that holds it")
    paths = sorted((p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and is_image(p)
                    and not any(part.startswith(".") for part in p.relative_to(root).parts)))
    if not paths:
        raise ValueError(f"{root} holds no image files (looked for {', '.join(IMAGE_SUFFIXES)}, in subfolders too)")
    if any("/" not in path for path in paths):
        return ImageFiles(root, paths, None, [])
    classes = sorted({path.split("/")[0] for path in paths})
    if labels is not None:
        missing = [name for name in classes if name not in labels]
        if missing:
            raise ValueError(f"labels gives no class id for the folder{'s' if len(missing) > 1 else ''} "
                             f"{', '.join(missing)}; give one for every class folder: {', '.join(classes)}")
        ids = {name: int(labels[name]) for name in classes}
    elif all(name.isdigit() for name in classes):
        ids = {name: int(name) for name in classes}
    else:
        ids = {name: i for i, name in enumerate(classes)}
    return ImageFiles(root, paths, [ids[path.split("/")[0]] for path in paths], classes)


def parse_shard(shard: Union[str, Shard, None]) -> Optional[Shard]:
    """``"3/16"`` or ``(3, 16)`` -> ``(3, 16)``: shard 3 of 16, numbered from 0 (SLURM's ``--array=0-15``)."""
    if shard is None:
        return None
    try:
        index, count = (int(part) for part in str(shard).split("/")) if isinstance(shard, str) else map(int, shard)
    except (TypeError, ValueError):
        raise ValueError(f"shard is K/N, shard K of N (such as 3/16), got {shard!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: shards are numbered from 0 to {count - 1} (for a SLURM array "
                         f"job, --array=0-{count - 1} and --shard $SLURM_ARRAY_TASK_ID/{count})")
    return index, count


def shard_positions(count: int, shard: Optional[Shard]) -> List[int]:
    """The positions of shard ``k`` of ``n`` among ``count`` items: every n-th, from k. Shards are disjoint
    and together cover every position."""
    if shard is None:
        return list(range(count))
    index, total = shard
    return list(range(index, count, total))


def shard_path(out: PathLike, shard: Optional[Shard]) -> Path:
    """Where shard ``k`` of ``n`` writes ``out``: ``results.parquet`` -> ``results-shard03of16.parquet``."""
    out = Path(out).expanduser()
    if shard is None:
        return out
    digits = len(str(shard[1] - 1))
    return out.with_name(f"{out.stem}-shard{shard[0]:0{digits}d}of{shard[1]}{out.suffix}")


# --- items: what one image gives the audit ------------------------------------------------------

@dataclass
class Item:
    """One image, read: its position in the whole list, id, tensor ``[C, H, W]`` (None when it could
    not be read), true label (None: unknown), region mask, file size (width, height) and error."""

    position: int
    image_id: str
    tensor: Optional[torch.Tensor]
    label: Optional[int]
    mask: Optional[np.ndarray]
    file_size: Tuple[int, int]
    error: str = ""

    def pin_memory(self) -> "Item":
        """The same item, its tensor in pinned memory (a DataLoader's ``pin_memory=True``, for CUDA)."""
        return replace(self, tensor=self.tensor.pin_memory()) if self.tensor is not None else self


def _short_error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".strip()


@dataclass(frozen=True)
class Scaling:
    """How a PIL image becomes the model's input: scaled whole to ``size`` (H, W), normalised with
    ``mean`` and ``std`` (one number per channel: 3 for RGB, 1 for a grey model)."""

    size: Tuple[int, int]
    mean: Tuple[float, ...]
    std: Tuple[float, ...]

    def __call__(self, image: Image.Image) -> torch.Tensor:
        height, width = self.size
        pixels = np.asarray(image.convert("RGB").resize((width, height), Image.Resampling.BICUBIC),
                            dtype=np.float32) / 255.0
        if len(self.mean) == 1:                                      # a grey model
            pixels = pixels @ LUMINANCE[:, None]
        mean, std = np.asarray(self.mean, dtype=np.float32), np.asarray(self.std, dtype=np.float32)
        return torch.from_numpy(np.ascontiguousarray(((pixels - mean) / std).transpose(2, 0, 1)))


class FolderImages(torch.utils.data.Dataset):
    """The images of ``image_files`` at ``positions``, each made the model's input by ``scaling``;
    an unreadable file gives an ``Item`` with its error."""

    def __init__(self, files: ImageFiles, positions: Sequence[int], scaling: Scaling,
                 regions: Optional[Regions] = None) -> None:
        self.files, self.positions, self.scaling, self.regions = files, list(positions), scaling, regions

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> Item:
        position = self.positions[i]
        image_id = self.files.paths[position]
        label = self.files.labels[position] if self.files.labels is not None else None
        try:
            image, _ = open_rgb(self.files.root / image_id)
            file_size = image.size
            tensor = self.scaling(image)
            mask = self.regions.mask(image_id, self.scaling.size, file_size) if self.regions else None
        except Exception as error:                                  # any failure becomes the row's error
            message = _short_error(error).replace(f"{self.files.root}{os.sep}", "")    # the id says where
            return Item(position, image_id, None, label, None, (0, 0), message)
        return Item(position, image_id, tensor, label, mask, file_size)


def dataset_ids(dataset: Any) -> Optional[List[str]]:
    """Ids for a Dataset's items: the file paths of an ``ImageFolder`` (relative to its root), else None."""
    samples = getattr(dataset, "samples", None)
    if not isinstance(samples, list) or len(samples) != len(dataset):
        return None
    root = Path(getattr(dataset, "root", "") or "")
    ids = []
    for sample in samples:
        path = Path(sample[0] if isinstance(sample, (tuple, list)) else sample)
        try:
            ids.append(path.relative_to(root).as_posix())
        except ValueError:
            ids.append(path.as_posix())
    return ids


def split_sample(sample: Any) -> Tuple[Any, Optional[int]]:
    """(image, label) from what a Dataset gives: an image, ``(image, label, ...)`` or a dict with
    ``image``/``images``/``pixel_values`` and ``label``/``labels``."""
    if isinstance(sample, Mapping):
        image = next((sample[k] for k in ("image", "images", "pixel_values", "input") if k in sample), None)
        if image is None:
            raise ValueError(f"a dict sample needs the image under 'image' (or 'images', 'pixel_values'); "
                             f"it has {', '.join(map(str, sample))}")
        label = next((sample[k] for k in ("label", "labels", "target") if k in sample), None)
    elif isinstance(sample, (tuple, list)):
        image, label = sample[0], (sample[1] if len(sample) > 1 else None)
    else:
        image, label = sample, None
    return image, label


def _label(value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return None                                   # a mask or a one-hot vector: no class id
        value = value.item()
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None                # -1: no label, as many datasets write it


class DatasetImages(torch.utils.data.Dataset):
    """A caller's Dataset, item by item: its image as a tensor (a PIL image is scaled and normalised as
    a folder's is), its label, its id and region; an item that fails to load gives its error."""

    def __init__(self, dataset: Any, positions: Sequence[int], ids: Optional[Sequence[str]],
                 scaling: Scaling, regions: Optional[Regions] = None) -> None:
        self.dataset, self.positions, self.ids, self.scaling, self.regions = \
            dataset, list(positions), ids, scaling, regions

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> Item:
        position = self.positions[i]
        image_id = self.ids[position] if self.ids is not None else str(position)
        label, file_size = None, None
        try:
            image, label = split_sample(self.dataset[position])
            label = _label(label)
            if isinstance(image, Image.Image):
                file_size = image.size
                image = self.scaling(image)
            elif isinstance(image, np.ndarray):
                image = torch.from_numpy(image)
            if not isinstance(image, torch.Tensor) or image.dim() != 3 or not image.is_floating_point():
                shape = tuple(image.shape) if hasattr(image, "shape") else type(image).__name__
                raise ValueError(f"the Dataset gives {shape}, not a float tensor [C, H, W] (or a PIL image)")
            file_size = file_size or (image.shape[2], image.shape[1])      # a tensor: its own pixels
            mask = self.regions.mask(image_id, tuple(image.shape[1:]), file_size) if self.regions else None
        except Exception as error:
            return Item(position, image_id, None, label, None, (0, 0), _short_error(error))
        return Item(position, image_id, image, label, mask, file_size)


def keep_items(items: List[Item]) -> List[Item]:
    """The DataLoader's collate function: the items as they are (the audit groups them by size)."""
    return items


def batch_items(batch: Any, start: int, ids: Optional[Sequence[str]], regions: Optional[Regions]) -> List[Item]:
    """The items of one batch from a caller's DataLoader (images ``[N, C, H, W]``, with labels or not),
    numbered from position ``start``."""
    images, labels = split_sample(batch)
    if isinstance(images, torch.Tensor) and images.dim() == 3:
        images = images[None]
    if not isinstance(images, (torch.Tensor, list, tuple)):
        raise ValueError(f"the DataLoader gives {type(images).__name__}, not a batch of images [N, C, H, W]")
    labels = [None] * len(images) if labels is None else list(labels)
    items = []
    for i, (image, label) in enumerate(zip(images, labels)):
        position = start + i
        image_id = ids[position] if ids is not None and position < len(ids) else str(position)
        size = (int(image.shape[-1]), int(image.shape[-2]))
        mask = regions.mask(image_id, size[::-1], size) if regions else None
        items.append(Item(position, image_id, image, _label(label), mask, size))
    return items


def scaling_for(model: Any, size: Optional[int] = None) -> Scaling:
    """How a folder's images become ``model``'s input: its preprocessing (``helpers.images.preprocessing``),
    at ``size`` x ``size`` pixels when given."""
    wanted = preprocessing(model)
    return Scaling((size, size) if size else tuple(wanted.size), tuple(wanted.mean), tuple(wanted.std))


class Source:
    """``data`` as an audit reads it: the ids of its images (None when a DataLoader does not say), whether
    it has labels, its class names, and ``images(positions)``: a Dataset of ``Item`` for those positions."""

    def __init__(self, data: Any, scaling: Scaling, regions: Optional[Regions] = None,
                 labels: Optional[Mapping[str, int]] = None) -> None:
        self.data, self.scaling, self.regions = data, scaling, regions
        self.loader: Optional[torch.utils.data.DataLoader] = None
        self.names: Optional[List[str]] = None
        self.unlabelled = False
        if isinstance(data, torch.utils.data.DataLoader):
            if isinstance(data.sampler, torch.utils.data.RandomSampler):
                raise ValueError("this DataLoader shuffles, so an image's position changes from run to run and the "
                                 "audit could not resume or split into shards: pass DataLoader(dataset, "
                                 "shuffle=False), or the Dataset itself, audit(model, loader.dataset)")
            self.loader, self.dataset = data, data.dataset
            self.ids = dataset_ids(data.dataset) if hasattr(data.dataset, "__len__") else None
            self.names = getattr(data.dataset, "classes", None)
        elif isinstance(data, (str, os.PathLike)):
            self.files = image_files(data, labels)
            self.ids, self.unlabelled = self.files.paths, self.files.labels is None
            if self.files.classes and labels is None and not all(name.isdigit() for name in self.files.classes):
                self.names = self.files.classes
        elif hasattr(data, "__getitem__") and hasattr(data, "__len__"):
            self.dataset = data
            self.ids = dataset_ids(data) or [str(i) for i in range(len(data))]
            self.names = getattr(data, "classes", None)
        else:
            raise TypeError(f"data is a folder of images, a torch Dataset or a DataLoader, not {type(data).__name__}")

    def images(self, positions: Sequence[int]) -> torch.utils.data.Dataset:
        """The items at ``positions`` (of a DataLoader: of its Dataset, read item by item)."""
        if isinstance(self.data, (str, os.PathLike)):
            return FolderImages(self.files, positions, self.scaling, self.regions)
        ids = self.ids or [str(i) for i in range(len(self.dataset))]
        return DatasetImages(self.dataset, positions, ids, self.scaling, self.regions)

    def position(self, image_id: str) -> int:
        """Where the image ``image_id`` is (for an image listed in an audit's table)."""
        if not hasattr(self, "_where"):
            self._where = {name: i for i, name in enumerate(self.ids or [])}
        if image_id in self._where:
            return self._where[image_id]
        if self.ids is None and image_id.isdigit():
            return int(image_id)
        raise ValueError(f"{image_id} is not in this data: is it the data the table was made from?")
