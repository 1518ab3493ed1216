"""Getting the lesson's files: from the cache, from an instructor's mirror folder, or from the web.

Every file the lesson downloads is listed in ``data/manifest.json`` with its URL and sha256.
:func:`fetch` looks for a file in this order and checks its hash every time:

1. the cache folder (``LESSON_CACHE``, default ``~/.cache/gradcam-lesson``);
2. the mirror folder named by ``LESSON_DATA_MIRROR`` (an instructor's USB stick, or CI's copy);
3. the file's URL, with a timeout, a size cap and a progress bar.

Set ``LESSON_OFFLINE=1`` to forbid step 3 (the tests do).

>>> from helpers import fetch
>>> path = fetch("both.png")            # doctest: +SKIP
>>> path.name                           # doctest: +SKIP
'both.png'
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

from ._files import read_data_file

#: Seconds to wait for a server to answer (connect, then each read).
TIMEOUT = (10.0, 30.0)
#: Largest download accepted for an image, in bytes.
MAX_IMAGE_BYTES = 30 * 1024 * 1024
#: Largest download accepted for model weights, in bytes.
MAX_WEIGHTS_BYTES = 400 * 1024 * 1024

PathLike = Union[str, "os.PathLike[str]"]


class OfflineError(OSError):
    """Raised instead of a download when ``LESSON_OFFLINE`` is set."""


class HashMismatchError(OSError):
    """A file's sha256 is not the one the manifest lists."""


def is_offline() -> bool:
    """True when ``LESSON_OFFLINE`` is set to 1/true/yes: no download is tried."""
    return os.environ.get("LESSON_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def cache_dir() -> Path:
    """The folder that keeps downloaded lesson files (``LESSON_CACHE`` overrides it)."""
    if os.environ.get("LESSON_CACHE"):
        return Path(os.environ["LESSON_CACHE"]).expanduser()
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "gradcam-lesson"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gradcam-lesson"


def mirror_dir() -> Optional[Path]:
    """The mirror folder named by ``LESSON_DATA_MIRROR``, or None when it is unset."""
    value = os.environ.get("LESSON_DATA_MIRROR", "").strip()
    return Path(value).expanduser() if value else None


@lru_cache(maxsize=1)
def _manifest_file() -> dict:
    text = read_data_file("manifest.json")
    return json.loads(text)


def manifest() -> Dict[str, dict]:
    """The manifest's entries (images and weights), by file name."""
    data = _manifest_file()
    return {entry["name"]: entry for entry in data["images"] + data["weights"]}


def lesson_images() -> List[str]:
    """The names of the lesson's images, in the manifest's order."""
    return [entry["name"] for entry in _manifest_file()["images"]]


def sha256_of(path: PathLike) -> str:
    """The sha256 of a file, as 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_matches(path: PathLike, entry: dict) -> bool:
    """Whether the file at ``path`` has the hash (or hash prefix) that ``entry`` lists."""
    actual = sha256_of(path)
    if "sha256" in entry:
        return actual == entry["sha256"]
    return actual.startswith(entry["sha256_prefix"])


def _open_url(url: str, timeout=TIMEOUT):
    if is_offline():
        raise OfflineError(f"not downloading {url}: LESSON_OFFLINE is set")
    if not url.lower().startswith(("http://", "https://")):
        raise ValueError(f"only http(s) URLs can be downloaded, got {url!r}")
    import requests

    try:
        response = requests.get(url, stream=True, timeout=timeout)
        response.raise_for_status()
    except requests.RequestException as error:
        raise OSError(f"could not download {url}: {error}") from error
    return response


def _chunks(url: str, max_bytes: int, timeout) -> Iterator[Tuple[int, bytes]]:
    """Yield (declared size, chunk) from a download, stopping at ``max_bytes`` and at timeouts."""
    import requests

    response = _open_url(url, timeout)
    with response:
        declared = int(response.headers.get("Content-Length") or 0)
        if declared > max_bytes:
            raise ValueError(f"{url} is {declared} bytes, more than the {max_bytes}-byte limit")
        total = 0
        try:
            for chunk in response.iter_content(chunk_size=1 << 16):
                total += len(chunk)
                if total > max_bytes:
                    raise ValueError(f"{url} is larger than the {max_bytes}-byte limit")
                yield declared, chunk
        except requests.RequestException as error:
            raise OSError(f"could not download {url}: {error}") from error


def read_url(url: str, *, max_bytes: int = MAX_IMAGE_BYTES, timeout=TIMEOUT) -> bytes:
    """Download ``url`` into memory, refusing anything larger than ``max_bytes``."""
    return b"".join(chunk for _, chunk in _chunks(url, max_bytes, timeout))


def download(url: str, dest: PathLike, *, entry: Optional[dict] = None, max_bytes: int = MAX_IMAGE_BYTES,
             timeout=TIMEOUT, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` with a progress bar; check the hash that ``entry`` lists.

    The file appears at ``dest`` only once it is complete and verified.
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    chunks = _chunks(url, max_bytes, timeout)
    declared, first = next(chunks, (0, b""))       # connect (and fail) before making any file
    handle = tempfile.NamedTemporaryFile(dir=dest.parent, prefix=dest.name + ".", suffix=".part", delete=False)
    part = Path(handle.name)
    try:
        with handle, tqdm(total=declared or None, unit="B", unit_scale=True, desc=dest.name,
                          disable=not progress) as bar:
            for chunk in itertools.chain([first], (chunk for _, chunk in chunks)):
                handle.write(chunk)
                bar.update(len(chunk))
        if entry is not None and not hash_matches(part, entry):
            raise HashMismatchError(f"{url} downloaded, but its sha256 is not the one in the manifest "
                                    f"(the file changed or the download broke); nothing was saved")
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    return dest


def fetch(name: str, *, dest: Optional[PathLike] = None, progress: bool = True) -> Path:
    """Return the local path of the lesson file ``name`` (for example ``"both.png"``).

    Looks in the cache, then in ``LESSON_DATA_MIRROR``, then downloads, checking the sha256
    each time. ``dest`` puts the file somewhere other than the lesson's cache (the ResNet-50
    weights go into torch's). Raises ``KeyError`` for a name the manifest does not list, and
    ``OSError`` saying where it looked when no copy can be had.
    """
    entries = manifest()
    if name not in entries:
        raise KeyError(f"{name!r} is not a lesson file; the manifest lists {', '.join(sorted(entries))}")
    entry = entries[name]
    cached = Path(dest) if dest is not None else cache_dir() / name
    tried = []
    if cached.is_file():
        if hash_matches(cached, entry):
            return cached
        tried.append(f"the cache ({cached}) held a copy with the wrong sha256, so it was removed")
        cached.unlink()
    else:
        tried.append(f"not in the cache ({cached})")

    mirror = mirror_dir()
    if mirror is None:
        tried.append("no mirror folder (LESSON_DATA_MIRROR is not set)")
    elif not (mirror / name).is_file():
        tried.append(f"not in the mirror folder ({mirror})")
    elif not hash_matches(mirror / name, entry):
        tried.append(f"the mirror's copy ({mirror / name}) has the wrong sha256")
    else:
        cached.parent.mkdir(parents=True, exist_ok=True)
        part = cached.with_name(cached.name + ".part")
        shutil.copyfile(mirror / name, part)
        os.replace(part, cached)
        return cached

    try:
        limit = MAX_WEIGHTS_BYTES if name.endswith(".pth") else MAX_IMAGE_BYTES
        return download(entry["url"], cached, entry=entry, max_bytes=limit, progress=progress)
    except (OSError, ValueError) as error:
        tried.append(f"download failed: {error}")
    raise OSError(
        f"could not get the lesson file {name!r}:\n  - " + "\n  - ".join(tried) +
        "\nWhat to do: connect to the internet and run `python -m helpers.setup` again, or set "
        "LESSON_DATA_MIRROR to the absolute path of a folder that holds the lesson's files "
        "(an instructor's USB stick)."
    )
