"""Getting the lesson's files: from the cache, from an instructor's mirror folder, or from the web.

Every file the lesson downloads is listed in ``data/manifest.json`` with its URL and sha256.
:func:`fetch` looks for a file in this order and checks its hash every time:

1. the cache folder (``LESSON_CACHE``, default ``~/.cache/gradcam-lesson``);
2. the mirror folder named by ``LESSON_DATA_MIRROR`` (an instructor's USB stick, or CI's copy);
3. the file's URL, with a timeout, a stall rule, a size cap and a progress bar.

Set ``LESSON_OFFLINE=1`` to forbid step 3 (the tests do). A mirror's copy goes into the
cache under a unique temporary name and an atomic rename, so processes sharing a cache
never see half a file; when the cache cannot be written, the mirror's checked copy is used
in place. A download that brings less than ``LESSON_STALL_BYTES`` (10 KB) in any
``LESSON_STALL_SECONDS`` (30 s) is stopped, with a message naming the URL and the rate.

>>> from helpers import fetch
>>> path = fetch("both.png")            # doctest: +SKIP
>>> path.name                           # doctest: +SKIP
'both.png'
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import json
import math
import os
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple, Union

from ._files import read_data_file

#: Seconds to wait for a server to answer (connect, then each read).
TIMEOUT = (10.0, 30.0)
#: Largest download accepted for an image, in bytes.
MAX_IMAGE_BYTES = 30 * 1024 * 1024
#: Largest download accepted for model weights, in bytes.
MAX_WEIGHTS_BYTES = 400 * 1024 * 1024
#: The stall rule: a download that brings fewer than STALL_BYTES in STALL_SECONDS is stopped.
#: ``LESSON_STALL_SECONDS`` and ``LESSON_STALL_BYTES`` override them. 100 MB of weights still
#: arrive over slow Wi-Fi; a server that trickles a byte at a time does not hold the lesson up.
STALL_SECONDS = 30.0
STALL_BYTES = 10 * 1024
#: ``.part`` files older than this (seconds) were left by a process that was killed: removed.
STALE_PART_SECONDS = 3600.0

PathLike = Union[str, "os.PathLike[str]"]


class OfflineError(OSError):
    """Raised instead of a download when ``LESSON_OFFLINE`` is set."""


class HashMismatchError(OSError):
    """A file's sha256 is not the one the manifest lists."""


class DownloadStalledError(OSError):
    """A download brought less than the stall rule's minimum over its window."""


class FetchError(OSError):
    """No copy of a lesson file could be had; ``errors`` holds what went wrong at each place."""

    def __init__(self, message: str, errors: Optional[List[BaseException]] = None) -> None:
        super().__init__(message)
        self.errors = list(errors or [])


def is_offline() -> bool:
    """True when ``LESSON_OFFLINE`` is set to anything but ``0`` (or false/no/off): no download is tried."""
    return os.environ.get("LESSON_OFFLINE", "").strip().lower() not in {"", "0", "false", "no", "off"}


def check_file_name(name: object) -> str:
    """Return ``name`` if it is a plain file name; raise ``ValueError`` for a path (``../x``, ``a/b``)."""
    if (not isinstance(name, str) or not name.strip() or name in {".", ".."} or
            any(sep in name for sep in ("/", "\\", ":", "\0")) or os.path.basename(name) != name):
        raise ValueError(f"{name!r} is not a plain file name: a lesson file's name may not hold a folder, "
                         f"'..' or a path separator, so it can never be written outside the cache")
    return name


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
    return _digest_matches(sha256_of(path), entry)


def _digest_matches(actual: str, entry: dict) -> bool:
    if "sha256" in entry:
        return actual == entry["sha256"]
    return actual.startswith(entry["sha256_prefix"])


def _stall_rule() -> Tuple[float, int]:
    """(window in seconds, minimum bytes per window), from the environment or the defaults."""
    values = []
    for variable, default, kind in (("LESSON_STALL_SECONDS", STALL_SECONDS, float),
                                    ("LESSON_STALL_BYTES", STALL_BYTES, int)):
        text = os.environ.get(variable, "").strip()
        try:
            value = float(text) if text else default          # float first: "1e4" bytes is 10000
        except ValueError:
            raise ValueError(f"{variable} must be a number, got {text!r}") from None
        if not math.isfinite(value) or value <= 0:            # nan or inf would switch the rule off
            raise ValueError(f"{variable} must be a finite number more than 0 (default {default:g}), "
                             f"got {text!r}")
        value = kind(value)
        if value <= 0:
            raise ValueError(f"{variable} must be at least 1, got {text!r}")
        values.append(value)
    return values[0], values[1]


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


def _pieces(response, url: str) -> Iterator[bytes]:
    """The body of ``response`` as it arrives (each read returns what the network has, not 64 KB)."""
    import requests
    import urllib3

    raw, pieces = response.raw, None
    if hasattr(raw, "read1"):                          # urllib3 >= 2.3
        def read1() -> bytes:
            return raw.read1(1 << 16, decode_content=True)
    elif not response.headers.get("Content-Encoding") and hasattr(getattr(raw, "_fp", None), "read1"):
        def read1() -> bytes:                          # older urllib3: http.client's own read1
            return raw._fp.read1(1 << 16)
    else:
        pieces = response.iter_content(chunk_size=1 << 16)
    while True:
        try:
            piece = next(pieces, b"") if pieces is not None else read1()
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as error:
            raise OSError(f"could not download {url}: {error}") from error
        if not piece:
            return
        yield piece


def _silence_is_a_stall(pieces: Iterator[bytes], url: str, window: float, least: int) -> Iterator[bytes]:
    """``pieces``, with a read that times out (nothing for the whole window) reported as a stall."""
    import socket

    import requests
    import urllib3

    timeouts = (requests.Timeout, urllib3.exceptions.TimeoutError, socket.timeout, TimeoutError)
    while True:
        try:
            piece = next(pieces)
        except StopIteration:
            return
        except OSError as error:
            cause = error.__cause__
            if isinstance(cause, timeouts) or any(isinstance(a, timeouts) for a in getattr(cause, "args", ())) \
                    or "timed out" in str(error).lower():
                raise DownloadStalledError(
                    f"the download of {url} stalled: nothing arrived for {window:g} s, less than the "
                    f"{least} bytes per {window:g} s needed, so it was stopped. The server or the connection "
                    f"is too slow; try again later, or use LESSON_DATA_MIRROR") from error
            raise
        yield piece


def _chunks(url: str, max_bytes: int, timeout) -> Iterator[Tuple[int, bytes]]:
    """Yield (declared size, chunk) from a download, stopping at ``max_bytes``, timeouts and stalls."""
    window, least = _stall_rule()
    connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    # A server that sends nothing at all is stopped after the stall window, not the longer read timeout.
    response = _open_url(url, (connect, min(read, window)))
    with response:
        header = (response.headers.get("Content-Length") or "").strip()
        try:
            declared = int(header or 0)
        except ValueError:
            raise ValueError(f"{url} sent an invalid Content-Length header ({header!r} is not a number "
                             f"of bytes); not downloading it") from None
        if declared > max_bytes:
            raise ValueError(f"{url} is {declared} bytes, more than the {max_bytes}-byte limit")
        total, started, since = 0, time.monotonic(), 0
        for chunk in _silence_is_a_stall(_pieces(response, url), url, window, least):
            total += len(chunk)
            since += len(chunk)
            if total > max_bytes:
                raise ValueError(f"{url} is larger than the {max_bytes}-byte limit")
            elapsed = time.monotonic() - started
            if elapsed >= window:
                if since < least:
                    raise DownloadStalledError(
                        f"the download of {url} stalled: {since} bytes in {elapsed:.1f} s "
                        f"({since / elapsed:.1f} bytes/s), less than the {least} bytes per {window:g} s "
                        f"needed, so it was stopped ({total} bytes arrived in all). The server or the "
                        f"connection is too slow; try again later, or use LESSON_DATA_MIRROR")
                started, since = time.monotonic(), 0
            yield declared, chunk


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


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:                                    # a folder we may not look into
        return False


def _sweep_stale_parts(dest: Path) -> None:
    """Remove ``<name>*.part`` files beside ``dest`` older than an hour: a killed process left them."""
    try:
        now = time.time()
        for part in dest.parent.glob(glob.escape(dest.name) + "*.part"):
            if now - part.stat().st_mtime > STALE_PART_SECONDS:
                part.unlink(missing_ok=True)
    except OSError:
        pass


def _copy_checked(source: Path, dest: Path, entry: dict) -> Path:
    """Copy ``source`` to ``dest`` through a unique ``.part`` file and an atomic rename, checking the hash.

    Other processes copying the same file at the same time each write their own ``.part``;
    whichever renames last wins, and every rename puts a complete, checked file in place.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=dest.parent, prefix=dest.name + ".", suffix=".part", delete=False)
    part = Path(handle.name)
    try:
        digest = hashlib.sha256()
        with handle, open(source, "rb") as reader:
            for block in iter(lambda: reader.read(1 << 20), b""):
                digest.update(block)
                handle.write(block)
        if not _digest_matches(digest.hexdigest(), entry):
            raise HashMismatchError(f"the mirror's copy ({source}) has the wrong sha256")
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    return dest


_SAID_UNWRITABLE: Set[str] = set()


def _say_unwritable(folder: Path, error: BaseException, used: Path, variable: str) -> None:
    """Say once per folder that the cache cannot be written and which copy is used instead."""
    if str(folder) in _SAID_UNWRITABLE:
        return
    _SAID_UNWRITABLE.add(str(folder))
    why = error.strerror or type(error).__name__ if isinstance(error, OSError) else str(error)
    print(f"NOTICE: the cache folder {folder} cannot be written ({why}); using the mirror's checked "
          f"copies in place, such as {used}. To keep copies, set {variable} to a folder you can write to.")


def fetch(name: str, *, dest: Optional[PathLike] = None, progress: bool = True) -> Path:
    """Return the local path of the lesson file ``name`` (for example ``"both.png"``).

    Looks in the cache, then in ``LESSON_DATA_MIRROR``, then downloads, checking the sha256
    each time. ``dest`` puts the file somewhere other than the lesson's cache (the ResNet-50
    weights go into torch's). Raises ``KeyError`` for a name the manifest does not list,
    ``ValueError`` for a name that is not a plain file name, and ``FetchError`` (an ``OSError``)
    saying where it looked when no copy can be had. When the cache cannot be written, the
    mirror's checked copy is returned in place (and that is said once).
    """
    entries = manifest()
    if name not in entries:
        raise KeyError(f"{name!r} is not a lesson file; the manifest lists {', '.join(sorted(entries))}")
    check_file_name(name)
    entry = entries[name]
    cached = Path(dest) if dest is not None else cache_dir() / name
    tried: List[str] = []
    errors: List[BaseException] = []
    if _is_file(cached):
        if hash_matches(cached, entry):
            return cached
        tried.append(f"the cache ({cached}) held a copy with the wrong sha256, so it was removed")
        try:
            cached.unlink()
        except OSError:
            tried[-1] = f"the cache ({cached}) holds a copy with the wrong sha256 that cannot be removed"
    else:
        tried.append(f"not in the cache ({cached})")
    _sweep_stale_parts(cached)

    mirror = mirror_dir()
    if mirror is None:
        tried.append("no mirror folder (LESSON_DATA_MIRROR is not set)")
    elif not _is_file(mirror / name):
        tried.append(f"not in the mirror folder ({mirror})")
    else:
        try:
            return _copy_checked(mirror / name, cached, entry)
        except HashMismatchError as error:
            tried.append(str(error))
            errors.append(error)
        except OSError as error:                      # the cache cannot be written: use the mirror in place
            checked = False                           # whether the mirror's copy could be read and hashed
            try:
                usable = hash_matches(mirror / name, entry)
                checked = True
            except OSError as unreadable:
                usable, error = False, unreadable
            if usable:
                _say_unwritable(cached.parent, error, mirror / name, "LESSON_CACHE" if dest is None else "TORCH_HOME")
                return mirror / name
            if checked:                               # read and hashed: the mirror's copy itself is damaged
                tried.append(f"the mirror's copy ({mirror / name}) has the wrong sha256 (damaged or a "
                             f"different file); it was not used. Also, the cache could not be written: {error}")
            else:
                tried.append(f"could not copy the mirror's copy ({mirror / name}): {error}")
            errors.append(error)

    if is_offline():
        tried.append("no download: LESSON_OFFLINE is set")
        errors.append(OfflineError(f"not downloading {entry['url']}: LESSON_OFFLINE is set"))
        raise FetchError(
            f"could not get the lesson file {name!r}:\n  - " + "\n  - ".join(tried) +
            "\nWhat to do: unset LESSON_OFFLINE and connect to the internet, or set LESSON_DATA_MIRROR to the "
            "absolute path of a folder that holds good copies of the lesson's files (an instructor's USB stick).",
            errors)

    try:
        limit = MAX_WEIGHTS_BYTES if name.endswith(".pth") else MAX_IMAGE_BYTES
        return download(entry["url"], cached, entry=entry, max_bytes=limit, progress=progress)
    except (OSError, ValueError) as error:
        tried.append(f"download failed: {error}")
        errors.append(error)
    raise FetchError(
        f"could not get the lesson file {name!r}:\n  - " + "\n  - ".join(tried) +
        "\nWhat to do: connect to the internet and run `python -m helpers.setup` again, or set "
        "LESSON_DATA_MIRROR to the absolute path of a folder that holds the lesson's files "
        "(an instructor's USB stick).", errors)
