"""An audit's table: its columns, the rows of one batch, and the file written in chunks, atomically.

``helpers.audit`` gives one row per image (``SCHEMA`` lists the columns). This module makes the rows
of one batch from the model's maps and scores (``measures``), keeps the rows of a run, and writes
them to a Parquet or CSV file every so often, atomically (a stop half-way leaves the previous file
whole), with the maps, when asked, as small float16 grids in one ``.npz`` per write. ``done_ids``
reads what an earlier run finished, so a second run skips it.

>>> table = read_table("results.parquet")                            # doctest: +SKIP
>>> maps = load_maps(table, "results-maps")                          # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
import torch
from torch import nn

from .audit_data import Item
from .targets import Probability, Target, chosen_classes, class_names_of, describe_target, probability_of

#: The table's columns and their types (pandas' nullable types: a missing label is <NA>).
SCHEMA: Dict[str, str] = {
    "index": "int64", "image": "str", "label": "Int64", "label_name": "str", "predicted": "Int64",
    "predicted_name": "str", "probability": "float64", "correct": "boolean", "target": "Int64",
    "target_name": "str", "score": "float64", "peak_x": "float64", "peak_y": "float64", "peak_value": "float64",
    "region_share": "float64", "region_area": "float64", "width": "Int64", "height": "Int64", "error": "str",
    "model": "str", "layer": "str", "method": "str", "explained": "str", "map_file": "str",
}


def class_names(names: Any, count: int, model: Any = None) -> List[str]:
    """A name for each of ``count`` classes: ``names`` (a list, or a dict id -> name) where given, else the
    model's own (``helpers.targets.class_names_of``: Hugging Face's ``id2label``, ImageNet's for 1000
    classes, else "class k")."""
    if names is None:
        return list(class_names_of(model, count))
    if isinstance(names, Mapping):
        return [str(names.get(i, i)) for i in range(count)]
    names = list(names)
    return [str(names[i]) if i < len(names) else str(i) for i in range(count)]


class Classes:
    """The class names, and how scores become probabilities, for a model of so many classes; made once."""

    def __init__(self, model: nn.Module, given: Any, probability: object) -> None:
        self.model, self.given, self.made = model, given, {}
        self.kind = probability_of(model, 2, probability)           # checks ``probability`` at once
        self.given_probability = probability
        self.latest: List[str] = [] if given is None or isinstance(given, Mapping) else list(map(str, given))
        self.explained = False                     # whether any image of this run has been explained yet

    def __call__(self, count: int) -> Tuple[List[str], Probability]:
        if count not in self.made:
            self.made[count] = (class_names(self.given, count, self.model),
                                probability_of(self.model, count, self.given_probability))
        self.latest = self.made[count][0]
        return self.made[count]


# --- the rows of one batch -----------------------------------------------------------------------

def measures(group: List[Item], maps: np.ndarray, logits: Optional[torch.Tensor], scores: Optional[torch.Tensor],
             targets: List[Target], classes: Classes) -> List[dict]:
    """Each image's row: the prediction, what was explained and its score, the map's peak and strength, and
    its share in the region. ``logits``: the class scores [N, classes] (None for a model without them, such
    as a detector); ``scores``: each target's score [N] (``helpers.cam.explain``)."""
    count = len(group)
    predicted: List[Optional[int]] = [None] * count
    probability, explained, values = [float("nan")] * count, [None] * count, [float("nan")] * count
    names: List[str] = classes.latest
    if logits is not None:
        names, kind = classes(logits.shape[1])
        predicted = logits.argmax(dim=1).tolist()
        if kind.kind is not None:
            chance = torch.softmax(logits.float(), dim=1) if kind.kind == "softmax" else torch.sigmoid(logits.float())
            probability = chance.gather(1, torch.tensor(predicted, device=chance.device)[:, None])[:, 0].tolist()
        explained = chosen_classes(logits, targets)
    if scores is not None:
        values = scores.float().tolist()
    height, width = maps.shape[1:]
    flat = maps.reshape(count, -1)
    peaks = flat.argmax(axis=1)
    rows = []
    for i, item in enumerate(group):
        line, column = divmod(int(peaks[i]), width)
        file_width, file_height = item.file_size
        share, area = share_in_region(maps[i], item.mask)
        rows.append(row(item, names, predicted=predicted[i],
                         predicted_name=names[predicted[i]] if predicted[i] is not None else "",
                         probability=probability[i], target=explained[i],
                         target_name=names[explained[i]] if explained[i] is not None else describe_target(targets[i]),
                         score=values[i], peak_x=(column + 0.5) * file_width / width,
                         peak_y=(line + 0.5) * file_height / height, peak_value=float(flat[i, peaks[i]]),
                         region_share=share, region_area=area))
    return rows


def share_in_region(cam: np.ndarray, mask: Optional[np.ndarray]) -> Tuple[float, float]:
    """The share of the map's weight inside ``mask``, and the mask's area (a uniform map's share)."""
    if mask is None:
        return float("nan"), float("nan")
    total = float(cam.sum())
    return (float(cam[mask].sum()) / total if total > 0 else float("nan")), float(mask.mean())


def row(item: Item, names: Sequence[str], error: str = "", predicted: Optional[int] = None, **values) -> dict:
    """One image's row: its position, id, label and file size, the prediction, the error, and ``values``."""
    label = item.label
    found = {"index": item.position, "image": item.image_id, "label": label,
           "label_name": names[label] if label is not None and label < len(names) else "",
           "predicted": predicted, "correct": None if label is None or predicted is None else predicted == label,
           "width": item.file_size[0] or None, "height": item.file_size[1] or None, "error": error}
    found.update(values)
    return found


# --- the table: what is done, written in chunks, atomically -------------------------------------

def read_table(path: Union[str, os.PathLike]) -> pd.DataFrame:
    """An audit's table from its Parquet or CSV file, with ``SCHEMA``'s types."""
    path = Path(path)
    table = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else \
        pd.read_csv(path, dtype={"image": str}, keep_default_na=False, na_values={c: [""] for c in SCHEMA
                                                                                  if SCHEMA[c] != "str"})
    return typed(table)


def typed(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with ``SCHEMA``'s columns, in its order and with its types (text: "" where missing)."""
    for column, dtype in SCHEMA.items():
        if column not in table:
            table[column] = "" if dtype == "str" else None
        table[column] = table[column].fillna("").astype(str) if dtype == "str" else table[column].astype(dtype)
    return table[list(SCHEMA)]


def write_atomic(table: pd.DataFrame, path: Path) -> None:
    """Write ``table`` to ``path`` atomically: a stop half-way leaves the previous file as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if path.suffix.lower() == ".parquet":
        table.to_parquet(temporary, index=False)
    else:
        table.to_csv(temporary, index=False)
    os.replace(temporary, path)


def done_ids(path: Optional[Path], settings: Dict[str, str]) -> set:
    """The ids already in ``path`` without an error; a clear error if it was made with other settings."""
    if path is None or not path.exists():
        return set()
    table = read_table(path)
    for key, value in settings.items():
        other = set(table[key]) - {value, ""}
        if other:
            raise ValueError(f"{path} holds an audit with {key} {', '.join(sorted(other))}, not {value}: pass "
                             f"another out= for this audit, or delete {path.name} to start again")
    return set(table.loc[table.error == "", "image"])


class Table:
    """The rows so far: the earlier run's (from ``path``) and this run's, saved now and then."""

    def __init__(self, path: Optional[Path], maps_folder: Optional[Path], save_every: float) -> None:
        self.path, self.maps_folder, self.save_every = path, maps_folder, save_every
        self.saved = read_table(path) if path is not None and path.exists() else None
        self.pending: List[dict] = []
        self.maps: Dict[str, np.ndarray] = {}
        self.saved_at, self.writes, self.new, self.errors = time.monotonic(), 0, 0, 0

    def add(self, rows: List[dict], maps: Dict[str, np.ndarray], settings: Dict[str, str]) -> None:
        """This batch's rows (each with the audit's ``settings``) and maps; saved if it is time."""
        self.pending += [{**each, **settings} for each in rows]
        self.maps.update(maps)
        self.new += len(rows)
        self.errors += sum(bool(each["error"]) for each in rows)
        if time.monotonic() - self.saved_at >= self.save_every:
            self.save()

    def save(self) -> None:
        """Add the pending rows to the table (their maps to a new ``.npz``), and write it to ``path``."""
        if self.pending:
            chunk = pd.DataFrame(self.pending)
            if self.maps_folder is not None and self.maps:
                self.writes += 1
                name = f"maps-{int(chunk['index'].min()):08d}-{os.getpid()}-{self.writes:04d}.npz"
                self.maps_folder.mkdir(parents=True, exist_ok=True)
                temporary = self.maps_folder / f".{name}.tmp.npz"
                np.savez_compressed(temporary, ids=np.array(list(self.maps)), maps=np.stack(list(self.maps.values())))
                os.replace(temporary, self.maps_folder / name)
                chunk["map_file"] = [name if image in self.maps else "" for image in chunk["image"]]
            parts = [self.saved, typed(chunk)] if self.saved is not None else [typed(chunk)]
            table = pd.concat(parts, ignore_index=True).drop_duplicates("image", keep="last")   # a retried row wins
            self.saved = table.sort_values("index", kind="stable").reset_index(drop=True)
            self.pending, self.maps = [], {}
        if self.path is not None and self.saved is not None:
            write_atomic(self.saved, self.path)
        self.saved_at = time.monotonic()

    def whole(self) -> pd.DataFrame:
        """Every row, sorted by position (after ``save``)."""
        return self.saved if self.saved is not None else typed(pd.DataFrame(columns=list(SCHEMA)))


def maps_folder(save_maps: Union[bool, str, os.PathLike, None], path: Optional[Path]) -> Optional[Path]:
    """Where the maps go: ``save_maps`` as a folder, beside ``path`` for True (``results-maps``), or None."""
    if save_maps is False or save_maps is None:
        return None
    if save_maps is True:
        if path is None:
            raise ValueError("save_maps=True saves the maps beside out=, but there is no out: pass out='results"
                             ".parquet', or save_maps='a folder'")
        return path.with_name(f"{path.stem}-maps")
    return Path(save_maps).expanduser()


def load_maps(table: pd.DataFrame, folder: Union[str, os.PathLike]) -> Dict[str, np.ndarray]:
    """The saved maps of ``table``'s rows (float16 grids), by image id, from ``folder`` (``results-maps``)."""
    found: Dict[str, np.ndarray] = {}
    wanted = table.loc[table.map_file != "", ["image", "map_file"]]
    for name, rows in wanted.groupby("map_file"):
        with np.load(Path(folder) / name) as saved:
            where = {image: i for i, image in enumerate(saved["ids"].tolist())}
            found.update({image: saved["maps"][where[image]] for image in rows["image"] if image in where})
    return found
