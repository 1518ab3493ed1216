#!/usr/bin/env python3
"""How fast is an audit of a whole dataset, and does its memory stay flat? In one run:

    python benchmarks/audit.py [--images 64] [--batch-size 8] [--workers 0] [--device cpu] [--threads N]

Throughput (images per second) over one folder of generated 256x256 JPEGs, read by the same DataLoader
(``helpers.audit_data``: decoded, scaled to 224 px, normalised), ResNet-50's architecture (random weights:
the same speed as the trained ones) at ``layer4``, the same batch size for all:

- a plain forward pass (``torch.inference_mode``), the floor: no explanation at all;
- ``helpers.audit.audit`` (the whole table: prediction, map, peak, strength; no file written);
- pytorch-grad-cam's ``GradCAM`` called on each batch (maps only, no table).

Then the peak resident memory (VmHWM) of an audit of 200 and of 2,000 images (``--memory-images``), each in
a fresh process, writing Parquet and the maps (``--memory-size``-px images, to keep this part short: the
memory the audit keeps does not depend on the image size). Ratios are printed; the target is an audit at
no less than 0.8 of the forward pass's throughput, and the same peak memory for both sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")


def make_folder(folder: Path, count: int, side: int = 256, seed: int = 0) -> Path:
    """``count`` JPEGs of smooth random colours (so JPEG decoding costs what a photo costs), in two class folders."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(count):
        small = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((side, side), Image.Resampling.BICUBIC)
        target = folder / ("a" if i % 2 else "b") / f"{i:06d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target, quality=90)
    return folder


def resnet50_random(device: str) -> torch.nn.Module:
    from torchvision.models import resnet50

    torch.manual_seed(0)
    return resnet50(weights=None).eval().to(device)


def loader_for(folder: Path, model, batch_size: int, workers: int):
    """The DataLoader the audit itself uses (its images as Items), for the two baselines."""
    from helpers.audit_data import Source, keep_items, scaling_for

    source = Source(folder, scaling_for(model))
    return torch.utils.data.DataLoader(source.images(range(len(source.ids))), batch_size=batch_size,
                                       num_workers=workers, collate_fn=keep_items)


def rate(function, count: int) -> float:
    started = time.perf_counter()
    function()
    return count / (time.perf_counter() - started)


def throughput(args) -> dict:
    from pytorch_grad_cam import GradCAM

    from helpers.audit import audit

    model = resnet50_random(args.device)
    with tempfile.TemporaryDirectory() as temporary:
        folder = make_folder(Path(temporary) / "images", args.images)
        loader = loader_for(folder, model, args.batch_size, args.workers)

        def forward():
            with torch.inference_mode():
                for items in loader:
                    model(torch.stack([item.tensor for item in items]).to(args.device))
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()

        def ours():
            audit(model, folder, [model.layer4], batch_size=args.batch_size, num_workers=args.workers,
                  device=args.device, progress=False)

        def library():
            # its hooks stay on the model only while it runs: left on, they fire in the other two runs too
            with GradCAM(model=model, target_layers=[model.layer4]) as cam:
                for items in loader:
                    cam(input_tensor=torch.stack([item.tensor for item in items]).to(args.device), targets=None)

        runs = (("forward", forward), ("audit", ours), ("pytorch-grad-cam", library))
        for _, function in runs:
            function()                                                  # warm: caches, allocator, threads
        results = {name: 0.0 for name, _ in runs}
        for _ in range(args.repeats):             # in turns, so that a change of load falls on all three
            for name, function in runs:
                results[name] = max(results[name], rate(function, args.images))
        return results


def memory_child(args) -> None:
    """In a fresh process: audit ``args.count`` images and print the peak RSS (VmHWM) in bytes."""
    from helpers.audit import audit

    model = resnet50_random("cpu")
    with tempfile.TemporaryDirectory() as temporary:
        folder = make_folder(Path(temporary) / "images", args.count, side=args.memory_size)
        audit(model, folder, [model.layer4], batch_size=args.batch_size, size=args.memory_size, progress=False,
              out=Path(temporary) / "results.parquet", save_maps=True, save_every=5.0)
    status = Path("/proc/self/status").read_text()
    peak = next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM:"))
    print(json.dumps({"count": args.count, "peak": peak}))


def memory(args, count: int) -> int:
    command = [sys.executable, __file__, "--memory-child", str(count), "--memory-size", str(args.memory_size),
               "--batch-size", str(args.batch_size)] + (["--threads", str(args.threads)] if args.threads else [])
    output = subprocess.run(command, check=True, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    return json.loads(output.strip().splitlines()[-1])["peak"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64, help="images for the throughput runs")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (the same for all three)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each, in turns; the best is kept")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--memory-images", type=int, nargs=2, default=(200, 2000))
    parser.add_argument("--memory-size", type=int, default=64, help="image side for the memory runs")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-child", type=int, dest="count", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.count:
        memory_child(args)
        return

    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    print(f"ResNet-50 (random weights), layer4, {args.images} images of 224 px, batch {args.batch_size}, "
          f"{args.workers} workers, {device_name}, torch {torch.__version__}")
    results = throughput(args)
    print("\n| what | images/s | relative to a plain forward pass |\n|---|---:|---:|")
    for name, value in results.items():
        print(f"| {name} | {value:.1f} | {value / results['forward']:.2f}x |")
    print(f"\naudit / forward: {results['audit'] / results['forward']:.2f} (target: at least 0.80); "
          f"audit / pytorch-grad-cam: {results['audit'] / results['pytorch-grad-cam']:.2f}x")
    if not args.skip_memory:
        small, large = args.memory_images
        peaks = {count: memory(args, count) for count in (small, large)}
        print(f"\npeak RSS of an audit ({args.memory_size} px images, Parquet and maps written):")
        for count, peak in peaks.items():
            print(f"  {count:5d} images: {peak / 2**20:.0f} MiB")
        print(f"  {large} / {small}: {peaks[large] / peaks[small]:.2f}x")


if __name__ == "__main__":
    main()
