"""Where each image's object is, for an audit: a box per image (from a CSV or a DataFrame) or a mask.

``helpers.audit`` measures the share of each map inside its image's region, beside the share a
uniform map would get there (the region's area). A region is given as

- a table of boxes, ``image, left, top, right, bottom`` in pixels of the image file (of the tensor,
  for a Dataset), [left, right) and [top, bottom); several rows for one image make one region;
- or a folder of masks, one per image at the same relative path (any image suffix: ``cat/001.png``
  for ``cat/001.jpg``); non-zero pixels are inside.

>>> regions = Regions.read(pd.DataFrame({"image": ["a.jpg"], "left": [0], "top": [0], "right": [50],
...                                      "bottom": [100]}))                                  # doctest: +SKIP
>>> regions.mask("a.jpg", input_size=(4, 4), file_size=(100, 100)).sum()                    # doctest: +SKIP
8
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

#: The file suffixes read as images (torchvision's, and .jfif); any other file is left out.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jfif", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")


def is_image(path: Path) -> bool:
    """Whether ``path`` is read as an image: one of ``IMAGE_SUFFIXES``, not hidden."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


class Regions:
    """Where each image's object is: boxes (from a CSV or a DataFrame) or a folder of masks.

    ``mask(image_id, input_size, file_size)`` is a boolean ``[H, W]`` at the model's input size,
    or None for an image without a region. Boxes are in pixels of the image file (``file_size``
    is its (width, height)), [left, top, right, bottom), so a box is scaled with the image.
    """

    COLUMNS = ("image", "left", "top", "right", "bottom")

    def __init__(self, boxes: Optional[Dict[str, List[Tuple[float, float, float, float]]]] = None,
                 masks: Optional[Path] = None) -> None:
        self.boxes = boxes or {}
        self.masks = masks
        self._mask_files: Optional[Dict[str, Path]] = None

    @classmethod
    def read(cls, source: Any) -> "Regions":
        """A CSV file, a ``pandas.DataFrame`` (columns ``image, left, top, right, bottom``) or a folder of masks."""
        if isinstance(source, Regions):
            return source
        if isinstance(source, (str, os.PathLike)) and Path(source).expanduser().is_dir():
            return cls(masks=Path(source).expanduser())
        import pandas as pd

        if isinstance(source, (str, os.PathLike)):
            path = Path(source).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"regions: no CSV file or mask folder at {path}")
            table = pd.read_csv(path, dtype={"image": str})
            name = str(path)
        elif isinstance(source, pd.DataFrame):
            table, name = source, "the regions table"
        else:
            raise TypeError(f"regions is a CSV file of boxes, a pandas DataFrame of boxes or a folder of masks, "
                            f"not {type(source).__name__}")
        missing = [column for column in cls.COLUMNS if column not in table.columns]
        if missing:
            raise ValueError(f"{name} has no column {', '.join(missing)}: a box per row needs the columns "
                             f"{', '.join(cls.COLUMNS)} (pixels of the image file)")
        boxes: Dict[str, List[Tuple[float, float, float, float]]] = {}
        for image, left, top, right, bottom in table[list(cls.COLUMNS)].itertuples(index=False):
            box = tuple(float(v) for v in (left, top, right, bottom))
            if not all(math.isfinite(v) for v in box) or box[2] <= box[0] or box[3] <= box[1]:
                raise ValueError(f"{name}: the box of {image} is {box}, not [left, top, right, bottom] with "
                                 f"right > left and bottom > top")
            boxes.setdefault(str(image), []).append(box)
        return cls(boxes=boxes)

    def _mask_file(self, image_id: str) -> Optional[Path]:
        if self._mask_files is None:                    # one walk of the folder, in the process that asks
            self._mask_files = {}
            for path in sorted(self.masks.rglob("*")):
                if path.is_file() and is_image(path):
                    self._mask_files.setdefault(path.relative_to(self.masks).with_suffix("").as_posix(), path)
        return self._mask_files.get(str(Path(image_id).with_suffix("").as_posix()))

    def mask(self, image_id: str, input_size: Tuple[int, int], file_size: Tuple[int, int]) -> Optional[np.ndarray]:
        height, width = input_size
        if self.masks is not None:
            path = self._mask_file(image_id)
            if path is None:
                return None
            with Image.open(path) as image:
                grey = image.convert("L").resize((width, height), Image.Resampling.NEAREST)
            return np.asarray(grey) > 0
        if image_id not in self.boxes:
            return None
        file_width, file_height = file_size
        columns = (np.arange(width) + 0.5) * file_width / width           # pixel centres, in file pixels
        rows = (np.arange(height) + 0.5) * file_height / height
        inside = np.zeros((height, width), dtype=bool)
        for left, top, right, bottom in self.boxes[image_id]:
            inside |= ((rows >= top) & (rows < bottom))[:, None] & ((columns >= left) & (columns < right))[None, :]
        return inside
