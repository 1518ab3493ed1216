"""Reading the lesson's data files (label file, manifest) wherever helpers is installed from."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: data/ beside helpers/ in a checkout of the lesson (the editable install reads it there).
REPO_DATA = Path(__file__).resolve().parent.parent / "data"


def read_data_file(name: str) -> str:
    """The text of ``data/<name>``: from the checkout, or from the installed package data."""
    if (REPO_DATA / name).is_file():
        return (REPO_DATA / name).read_text(encoding="utf-8")
    return resources.files("helpers.data").joinpath(name).read_text(encoding="utf-8")
