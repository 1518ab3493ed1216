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

from .downloads import fetch, is_offline, lesson_images
from .models import RESNET50_FILE, get_resnet50_weights, resnet50_weights_path


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
    try:
        path = get_resnet50_weights(progress=progress)
        print(f"  ok       ResNet-50 weights {path}")
        return path
    except (OSError, ValueError) as error:
        why = f"offline (LESSON_OFFLINE is set). {error}" if is_offline() else str(error)
        print(f"  skipped  ResNet-50 weights: {why}\n"
              f"           The lesson will use the offline stand-in (EfficientNet-Lite0) until they are cached.")
        return None


def write_mirror(folder: Path) -> None:
    """Copy the lesson's images (and the ResNet-50 weights, when cached) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in lesson_images():
        shutil.copyfile(fetch(name), folder / name)
    weights = resnet50_weights_path()
    if weights.is_file():
        shutil.copyfile(weights, folder / RESNET50_FILE)
    print(f"Mirror written to {folder.resolve()}; on each laptop set LESSON_DATA_MIRROR to that folder "
          f"and run `python -m helpers.setup`.")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.setup", description=__doc__.splitlines()[0])
    parser.add_argument("--no-weights", action="store_true", help="do not try to get the ResNet-50 weights")
    parser.add_argument("--mirror-out", type=Path, help="also write a mirror folder for a USB stick here")
    args = parser.parse_args(argv)
    print("Lesson images:")
    missing = fetch_images()
    if not args.no_weights:
        print("Model weights:")
        fetch_weights()
    if args.mirror_out and not missing:
        write_mirror(args.mirror_out)
    if missing:
        print(f"\n{len(missing)} lesson file(s) could not be had: see the lines above for what to do.")
        return 1
    print("Set-up done.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
