"""Audit a whole dataset: GradCAM for every image, as a table you can sort, filter and resume.

``audit(model, data)`` runs the model once per batch (``helpers.cam.compute_cams``: the network
runs without a graph up to the layer, so this costs about a plain forward pass) and gives one row
per image: its id, the predicted class and probability, the true label where known and whether
the prediction is right, the class explained, where the map peaks and how strong it is there
(the map before it is stretched to [0, 1], so maps can be compared), and, where regions are
given, the share of the map inside the image's region beside a uniform map's share (the region's
area). ``data`` is a folder (one subfolder per class, as ``ImageFolder`` reads it, or flat), a
``Dataset`` or a ``DataLoader``; ``helpers.audit_data`` says how each is read.

For large runs it streams (memory does not grow with the dataset), shows a progress bar, writes
``out`` (Parquet or CSV) every ``save_every`` seconds and when stopped (Ctrl-C), resumes (a second
run skips the images already in ``out``), and splits the work into shards for a cluster's array job:

    python -m helpers.audit val/ --out results.parquet --shard 3/16 --device cuda --workers 8

>>> from helpers.audit import audit, contact_sheet
>>> table = audit(model, "my_images/", out="results.parquet")        # doctest: +SKIP
>>> table[table.correct == False].sort_values("probability")         # doctest: +SKIP
>>> contact_sheet(table, model, "my_images/")                         # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .audit_data import Item, Source, batch_items, keep_items, parse_shard, scaling_for, shard_path, shard_positions
from .audit_regions import Regions
from .audit_sheet import contact_sheet, suspects
from .audit_table import SCHEMA, Classes, Table, done_ids, load_maps, maps_folder, measures, read_table, row
from .cam import check_target_layers, explain, layer_name, shown_name
from .models import MODEL_NAMES, default_target_layers, load_model
from .modelstate import model_device
from .targets import Target, describe_target

__all__ = ["audit", "read_table", "load_maps", "contact_sheet", "suspects", "SCHEMA", "main"]

#: What ``target=`` may name besides a class id or a function of the model's output.
TARGET_RULES = ("prediction", "label")


def audit(model: nn.Module, data: Any, target_layers: Optional[Sequence[nn.Module]] = None,
          target: Union[str, Target] = "prediction", *, out: Optional[Union[str, os.PathLike]] = None,
          regions: Any = None, batch_size: int = 16, device: Optional[Union[str, torch.device]] = None,
          num_workers: int = 0, shard: Union[str, Tuple[int, int], None] = None,
          save_maps: Union[bool, str, os.PathLike] = False, map_size: int = 32,
          labels: Optional[Mapping[str, int]] = None, class_names: Any = None, size: Optional[int] = None,
          method: str = "GradCAM", probability: object = "auto", progress: bool = True,
          save_every: float = 60.0) -> pd.DataFrame:
    """One row per image of ``data``: prediction, label, the map's peak and strength, its share in a region.

    - ``data``: a folder of images (subfolders are classes, numbered in sorted order as ``ImageFolder``
      numbers them; ``labels`` maps folder names to the model's class ids), a ``Dataset`` (items
      ``(image, label)``, an image alone, or a dict; images as tensors ``[C, H, W]`` or PIL images) or an
      unshuffled ``DataLoader``. A folder's images are scaled whole to the model's size (``size`` px
      square, by default the size ``helpers.images.preprocessing`` gives) and normalised as it says.
    - ``target``: what is explained: ``"prediction"`` (the top class), ``"label"`` (the true class), a
      class id, or any target ``helpers.targets`` takes: a function of the model's output for one image
      that gives one number (pytorch-grad-cam's target objects, such as ``ClassifierOutputTarget(245)``,
      work unchanged). Its value for each image is the row's ``score``.
    - ``out``: a ``.parquet`` or ``.csv`` file, written every ``save_every`` seconds, at the end and on
      Ctrl-C; a second call with the same ``out`` skips the images already in it (rows with an error
      are tried again). ``shard="3/16"``: only every 16th image from the 4th (numbered from 0), written to
      ``results-shard03of16.parquet``; merge the shards with ``pandas.concat``.
    - ``regions``: a CSV or DataFrame of boxes (``image, left, top, right, bottom``, in pixels of the
      image file) or a folder of masks (``helpers.audit_data.Regions``).
    - ``save_maps``: True (beside ``out``) or a folder: each map as a ``map_size`` grid of float16, in
      one ``.npz`` per write; ``load_maps`` reads them.
    - ``device``: CUDA when there is one; the caller's model is copied there and left where it is.
    - ``class_names``: the class names (a list, or a dict id -> name); by default the model's own (Hugging Face's
      ``id2label``), ImageNet's for 1000 classes, a folder's class folders' names. ``probability``: how
      scores become the ``probability`` column ("softmax", "sigmoid" or None; see ``helpers.targets``).

    An image that cannot be read, or that the model cannot take, gets a row with its error and no
    prediction; the others go on. An error of the set-up (a target the model's output cannot give,
    before any image was explained) is raised at once, with its message. The caller's model is left
    as it was (mode, weights, BatchNorm statistics, hooks).
    """
    if isinstance(target, str) and target not in TARGET_RULES or isinstance(target, bool) or target is None \
            or not (isinstance(target, (str, int, np.integer)) or callable(target)):
        raise ValueError(f"target is 'prediction', 'label', a class id (an int) or a function of the model's output "
                         f"for one image (such as pytorch-grad-cam's ClassifierOutputTarget), got {target!r}")
    rule = target if isinstance(target, str) else None
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size is a whole number of images, at least 1, got {batch_size!r}")
    layers = default_target_layers(model) if target_layers is None else check_target_layers(model, target_layers)
    shard = parse_shard(shard)
    path = shard_path(out, shard) if out is not None else None
    if path is not None and path.suffix.lower() not in (".parquet", ".csv"):
        raise ValueError(f"out is a .parquet or .csv file, got {path.name}")
    maps_at = maps_folder(save_maps, path)
    runner, run_layers = _on_device(model, layers, device)
    settings = {"model": str(getattr(model, "lesson_name", type(model).__name__)),
                "layer": "+".join(shown_name(model, layer) for layer in layers), "method": method,
                "explained": rule or describe_target(target)}
    done = done_ids(path, settings)
    source = Source(data, scaling_for(model, size), Regions.read(regions) if regions is not None else None, labels)
    if rule == "label" and source.unlabelled:
        raise ValueError("target='label' explains each image's true label, but this folder has no labels (no class "
                         "subfolders): use target='prediction', or put the images in one subfolder per class")
    reader = _Reader(source, shard, done, batch_size, num_workers, model_device(runner).type == "cuda")
    classes = Classes(model, class_names if class_names is not None else source.names, probability)
    table = Table(path, maps_at, save_every)
    from tqdm.auto import tqdm

    bar = tqdm(total=reader.todo, desc="auditing", unit="img", disable=not progress)
    try:
        for items in reader:
            rows, maps = _explain(runner, run_layers, items, target, method, classes, map_size if maps_at else 0)
            table.add(rows, maps, settings)
            bar.update(len(items))
            bar.set_postfix(errors=table.errors, refresh=False)
    except KeyboardInterrupt:
        table.save()
        where = f" in {path}; run the same call again to go on from there" if path else ""
        print(f"stopped: {table.new} images done{where}", file=sys.stderr)
        raise
    finally:
        bar.close()
    table.save()
    return table.whole()


# --- reading the data in batches ---------------------------------------------------------------

class _Reader:
    """The batches still to do (lists of ``Item``) of a ``Source``: this shard's images not yet ``done``."""

    def __init__(self, source: Source, shard, done: set, batch_size: int, num_workers: int, pin: bool) -> None:
        self.source, self.shard, self.done = source, shard, done
        if source.loader is None:
            positions = [p for p in shard_positions(len(source.ids), shard) if source.ids[p] not in done]
            self.todo: Optional[int] = len(positions)
            self.batches = torch.utils.data.DataLoader(source.images(positions), batch_size=batch_size,
                                                       num_workers=num_workers, collate_fn=keep_items, pin_memory=pin)
            return
        # A DataLoader is read as it is: every batch is loaded, and only this shard's batches (every n-th)
        # go through the model. For shards on many machines, pass the Dataset: each reads only its own.
        loader = source.loader
        count = len(loader.dataset) if hasattr(loader.dataset, "__len__") else None
        self.todo = None
        if count is not None and loader.batch_size:
            sizes = [min(loader.batch_size, count - start) for start in range(0, count, loader.batch_size)]
            mine = sum(size for b, size in enumerate(sizes) if shard is None or b % shard[1] == shard[0])
            self.todo = max(0, mine - len(done))

    def __iter__(self) -> Iterator[List[Item]]:
        if self.source.loader is None:
            yield from self.batches
            return
        loader, ids = self.source.loader, self.source.ids
        position, batches = 0, iter(loader)
        for number in range(sys.maxsize):
            try:
                batch = next(batches)
            except StopIteration:
                return
            except Exception as error:        # a broken batch: its positions get the error, the loader goes on
                items = [Item(position + i, ids[position + i] if ids and position + i < len(ids) else
                              str(position + i), None, None, None, (0, 0), f"{type(error).__name__}: {error}")
                         for i in range(loader.batch_size or 1)]
            else:
                items = batch_items(batch, position, ids, self.source.regions)
            position += len(items)
            if self.shard is None or number % self.shard[1] == self.shard[0]:
                items = [item for item in items if item.image_id not in self.done]
                if items:
                    yield items


# --- one batch: the maps, the numbers -----------------------------------------------------------

def _explain(model: nn.Module, layers: List[nn.Module], items: List[Item], target: object, method: str,
             classes: Classes, map_size: int) -> Tuple[List[dict], Dict[str, np.ndarray]]:
    """The rows of one batch, and its maps as small float16 grids (when ``map_size``).

    A batch the model cannot explain is tried image by image, so that only the images at fault get
    an error in their row. Where no image of the run has been explained yet and every one fails,
    the error is the set-up's (a target the model's output cannot give, a layer that never runs):
    it is raised, with the helpers' message, instead of being written into every row.
    """
    rows, maps_out, ready = [], {}, []
    for item in items:
        if item.error:
            rows.append(row(item, classes.latest, error=item.error))
        elif isinstance(target, str) and target == "label" and item.label is None:
            rows.append(row(item, classes.latest, error="target='label', but this image has no label"))
        else:
            ready.append(item)
    groups, failed = _same_size(ready), []
    while groups:
        group = groups.pop(0)
        targets = [None if isinstance(target, str) and target == "prediction" else
                   item.label if isinstance(target, str) else target for item in group]
        try:
            found = explain(model, layers, targets, torch.stack([item.tensor for item in group]), method=method,
                            stretch=False)
        except Exception as error:
            if len(group) > 1:
                groups = [[item] for item in group] + groups          # find the images at fault
            else:
                failed.append((group[0], error))
            continue
        classes.explained = True
        rows += measures(group, found.maps, found.logits, found.scores, found.targets, classes)
        if map_size:
            height, width = found.maps.shape[1:]
            small = F.adaptive_avg_pool2d(torch.from_numpy(found.maps)[:, None], (min(map_size, height), min(map_size, width)))
            maps_out.update({item.image_id: m for item, m in zip(group, small[:, 0].numpy().astype(np.float16))})
    if failed and not classes.explained:
        raise failed[0][1]                           # not one image explained yet: the set-up's error
    rows += [row(item, classes.latest, error=f"{type(error).__name__}: {error}") for item, error in failed]
    return rows, maps_out


def _same_size(items: List[Item]) -> List[List[Item]]:
    groups: Dict[tuple, List[Item]] = {}
    for item in items:
        groups.setdefault(tuple(item.tensor.shape), []).append(item)
    return list(groups.values())


# --- the model on its device --------------------------------------------------------------------

def _on_device(model: nn.Module, layers: List[nn.Module], device) -> Tuple[nn.Module, List[nn.Module]]:
    """The model on ``device`` (a copy if it is elsewhere: the caller's stays where it is), and its layers."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else model_device(model)
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if model_device(model) == device:
        return model, layers
    names = [layer_name(model, layer) for layer in layers]
    moved = copy.deepcopy(model).to(device)
    return moved, [moved.get_submodule(name) if name != "the model itself" else moved for name in names]


# --- the command line ---------------------------------------------------------------------------

def _model_from(name: str) -> nn.Module:
    """A lesson model (``resnet50``, ``efficientnet_lite0``, ...), ``package.module:function`` (called with no
    arguments), or a torchvision model name (with its default weights)."""
    if name in MODEL_NAMES:
        return load_model(name)
    if ":" in name:
        return _imported(name)()
    import torchvision

    return torchvision.models.get_model(name, weights="DEFAULT")


def _imported(name: str) -> Any:
    """``package.module:function`` -> the function."""
    import importlib

    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)


def _layer_from(model: nn.Module, name: str) -> nn.Module:
    """``layer4`` or ``layer4[2].conv3`` or ``features.8`` -> the module."""
    try:
        return model.get_submodule(name.replace("[", ".").replace("]", ""))
    except AttributeError:
        raise SystemExit(f"the model has no layer {name!r}; for example: "
                         f"{', '.join(n for n, _ in list(model.named_children())[-3:])}") from None


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.audit", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a folder of images: one subfolder per class, or flat")
    parser.add_argument("--out", default="audit.parquet", help="the table, .parquet or .csv (default audit.parquet)")
    parser.add_argument("--shard", help="K/N: shard K of N, numbered from 0 (SLURM: $SLURM_ARRAY_TASK_ID/N)")
    parser.add_argument("--model", default=None, help=f"{', '.join(MODEL_NAMES)}, a torchvision model name, or "
                        f"package.module:function that returns a model (default: the lesson's)")
    parser.add_argument("--layer", help="the target layer, such as layer4 (default: the model's last block)")
    parser.add_argument("--target", default="prediction", help="prediction, label, a class id, or "
                        "package.module:function that returns a target (such as a ClassifierOutputTarget)")
    parser.add_argument("--method", default="GradCAM")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when there is one)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers that read images")
    parser.add_argument("--size", type=int, help="the side images are scaled to (default: the model's)")
    parser.add_argument("--regions", help="a CSV of boxes (image,left,top,right,bottom) or a folder of masks")
    parser.add_argument("--labels", help="a JSON file: class folder name -> the model's class id")
    parser.add_argument("--save-maps", action="store_true", help="save each map as a small float16 grid")
    parser.add_argument("--map-size", type=int, default=32)
    parser.add_argument("--sheet", help="also draw the most suspicious images into this PNG")
    parser.add_argument("--top", type=int, default=16, help="how many images the sheet shows")
    parser.add_argument("--save-every", type=float, default=60.0, help="seconds between writes of --out")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        parse_shard(args.shard)                         # before the model loads: a wrong shard fails at once
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    model = _model_from(args.model) if args.model else load_model()
    layers = [_layer_from(model, args.layer)] if args.layer else None
    target = int(args.target) if args.target.isdigit() else _imported(args.target)() if ":" in args.target \
        else args.target
    labels = json.loads(Path(args.labels).read_text()) if args.labels else None
    # A cluster's scheduler stops a job with SIGTERM: stop as Ctrl-C does, writing what is done.
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        table = audit(model, args.folder, layers, target, out=args.out, regions=args.regions,
                      batch_size=args.batch_size, device=args.device, num_workers=args.workers, shard=args.shard,
                      save_maps=args.save_maps, map_size=args.map_size, labels=labels, size=args.size,
                      method=args.method, progress=not args.no_progress, save_every=args.save_every)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    written = shard_path(args.out, parse_shard(args.shard))
    wrong = int((table.correct == False).sum())                     # noqa: E712 (a nullable column)
    print(f"{len(table)} images in {written}: {int((table.error != '').sum())} could not be read or explained, "
          f"{wrong} predicted wrong")
    if args.sheet:
        figure = contact_sheet(table, model, args.folder, layers, n=args.top, regions=args.regions, labels=labels,
                               size=args.size, method=args.method)
        figure.savefig(args.sheet, dpi=100)
        print(f"the {min(args.top, len(suspects(table, args.top)))} images to look at first: {args.sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
