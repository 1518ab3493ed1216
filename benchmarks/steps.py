#!/usr/bin/env python3
"""How long do the lesson's slow steps take, and, with ``--baseline``, how much faster are they now?

    python benchmarks/steps.py [--baseline OTHER_CHECKOUT] [--models ...] [--steps ...] [--threads 2]
                               [--repeats 1]

Each step runs in a fresh Python process with PyTorch limited to ``--threads`` threads (2: a
learner's laptop), once per model, offline. With ``--baseline`` (another checkout of the
lesson, such as ``git worktree add /tmp/before main``), the same step runs there too, right
after, so that both are measured under the same load; the table gives both and their ratio.
Wall time is what a learner waits; CPU time (all threads) varies less on a busy machine.

The steps (what the episodes run):
  guided           guided_backprop of both.png, one class (episode 6), after one call to warm up
  deletion_table   episode 7's table: 4 photos x GradCAM and a random map x deletion and insertion
  randomisation    randomisation_check: 11 classes x 5 seeds, top 3 stages (episode 7)
  train            shortcut.make_data and one shortcut.train (episode 9), then dog_maps of 100 crops
  frozen           shortcut.frozen_backbone_experiment(model, seed=0) (episode 9's negative case)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
STEPS = ("guided", "deletion_table", "randomisation", "train", "frozen")
MODELS = ("efficientnet_lite0", "resnet50_untrained")

#: Run inside a fresh process: argv is (model, step, threads); prints one JSON line.
CHILD = r'''
import json, resource, sys, time
import torch
model_name, step, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(threads)
import numpy as np
from helpers import fetch, gradcam, load_image, load_model
from helpers.models import default_target_layers
result = {}
torch.manual_seed(0)                   # resnet50_untrained: the same random weights in every process
model = load_model(model_name)
x, _ = load_image(fetch("both.png"))


def measure(function):
    wall, cpu = time.perf_counter(), time.process_time()
    value = function()
    result.update(wall_s=time.perf_counter() - wall, cpu_s=time.process_time() - cpu)
    return value


if step == "guided":
    from helpers.trust import guided_backprop
    guided_backprop(model, 245, x)
    measure(lambda: guided_backprop(model, 245, x))
elif step == "deletion_table":
    from helpers.trust import area_under, deletion_curve, insertion_curve

    def table():
        rng, rows = np.random.default_rng(0), []
        for name in ["both.png", "dog_cat.jfif", "dogs.png", "horses.jpg"]:
            image, _ = load_image(fetch(name))
            with torch.no_grad():
                top = int(model(image).argmax())
            heatmap = gradcam(model, default_target_layers(model), top, image)
            random_map = rng.random(heatmap.shape).astype(np.float32)
            rows.append([round(area_under(curve(model, image, top, m)), 3)
                         for curve in (deletion_curve, insertion_curve) for m in (heatmap, random_map)])
        return rows
    result["values"] = measure(table)
elif step == "randomisation":
    from helpers.labels import LESSON_CLASSES
    from helpers.trust import randomisation_check
    outcome = measure(lambda: randomisation_check(model, default_target_layers, list(LESSON_CLASSES), x,
                                                  progress=False))
    result["values"] = round(outcome["mean"], 3)
elif step == "train":
    from helpers import shortcut

    import inspect

    def train():
        data = shortcut.make_data(seed=0)
        stamped = shortcut.stamp(data.train_images, data.train_labels == shortcut.DOG)
        if next(iter(inspect.signature(shortcut.train).parameters)) == "model":     # before issue 23
            trained = shortcut.train(shortcut.small_cnn(), stamped, data.train_labels, progress=False)
        else:
            trained = shortcut.train(stamped, data.train_labels, progress=False)
        maps = shortcut.dog_maps(trained, shortcut.stamp(data.test_images))
        return float(np.mean(shortcut.peak_distance(maps) <= 10))
    result["values"] = measure(train)
elif step == "frozen":
    from helpers import shortcut
    scores = measure(lambda: shortcut.frozen_backbone_experiment(model, seed=0))
    result["values"] = {k: round(v, 2) for k, v in scores.items()}
result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
print("RESULT " + json.dumps(result))
'''


def run_step(checkout: Path, model: str, step: str, threads: int) -> Dict[str, object]:
    """One step in a fresh process, with ``checkout`` first on the path."""
    env = dict(os.environ, PYTHONPATH=str(checkout), LESSON_OFFLINE="1", MPLBACKEND="Agg",
               OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    done = subprocess.run([sys.executable, "-c", CHILD, model, step, str(threads)], env=env, cwd=checkout,
                          capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(lines[-1][len("RESULT "):])


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout to compare with")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each; the fastest counts")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    checkouts = [("now", ROOT)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    print(f"{args.threads} threads, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start",
          flush=True)
    results = []
    for step in args.steps:
        for model in args.models:
            row = {"step": step, "model": model}
            for label, checkout in checkouts:
                runs = [run_step(checkout, model, step, args.threads) for _ in range(args.repeats)]
                good = [r for r in runs if "error" not in r]
                row[label] = min(good, key=lambda r: r["wall_s"]) if good else runs[0]
            results.append(row)
            print(_line(row), flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def _line(row: Dict[str, object]) -> str:
    def text(r):
        if "error" in r:
            return f"error: {r['error'][:80]}"
        return f"{r['wall_s']:6.1f} s wall, {r['cpu_s']:6.1f} s CPU, {r['peak_rss_gb']:.2f} GB"

    line = f"{row['step']:15s} {row['model']:19s} now: {text(row['now'])}"
    base = row.get("baseline")
    if base is not None:
        line += f" | before: {text(base)}"
        if "error" not in base and "error" not in row["now"]:
            line += (f" | before/now: {base['wall_s'] / row['now']['wall_s']:.1f}x wall, "
                     f"{base['cpu_s'] / row['now']['cpu_s']:.1f}x CPU")
        if base.get("values") != row["now"].get("values"):
            line += f"\n{'':35s} values now {row['now'].get('values')}, before {base.get('values')}"
    elif "values" in row["now"]:
        line += f"  {row['now']['values']}"
    return line


if __name__ == "__main__":
    raise SystemExit(main())
