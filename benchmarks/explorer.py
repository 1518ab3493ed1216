#!/usr/bin/env python3
"""How fast does the explorer answer a class change? Side by side, in one run, with
pytorch-grad-cam, Captum's LayerGradCam and torchcam, each making one GradCAM map.

    python benchmarks/explorer.py [--repeats 30] [--threads N]

ResNet-50 with random weights (the speed is the same as with the trained ones), one 224 px
image. "Explorer, new class" is a full update: the class Dropdown's value set, the gradient,
the map, the overlay and the JPEG bytes in the Image widget. Figures are p50 over the repeats.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
warnings.filterwarnings("ignore")


def p50_ms(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from torchvision.models import resnet50
    from PIL import Image

    from helpers import LABELS, class_name, explore, load_image

    torch.manual_seed(0)
    model = resnet50(weights=None).eval()
    rng = np.random.default_rng(0)
    input_tensor, rgb_image = load_image(Image.fromarray(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8)))
    widget = explore(model, [model.layer4], input_tensor, rgb_image)
    explorer = widget.explorer
    choice = explorer.class_choice
    choice.options = [(class_name(i), i) for i in range(len(LABELS))]   # every class selectable
    classes = iter(range(1000))

    def new_class():
        choice.value = next(classes)

    def seen_class():
        choice.value = 1 + (choice.value % 5)                        # 1..5, drawn before

    results = {}
    for layer in ("layer4", "layer3", "layer1"):
        explorer.layer_choice.value = layer
        results[f"explorer, new class, {layer}"] = p50_ms(new_class, args.repeats)
    explorer.layer_choice.value = "layer4"
    for class_id in range(1, 6):
        choice.value = class_id
    results["explorer, class seen before, layer4"] = p50_ms(seen_class, args.repeats)

    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    def grad_cam_call():
        with GradCAM(model=model, target_layers=[model.layer4]) as cam:
            cam(input_tensor=input_tensor, targets=[ClassifierOutputTarget(7)])

    results["pytorch-grad-cam GradCAM, one call"] = p50_ms(grad_cam_call, args.repeats)

    from captum.attr import LayerAttribution, LayerGradCam

    captum_cam = LayerGradCam(model, model.layer4)

    def captum_call():
        attribution = captum_cam.attribute(input_tensor, target=7)
        LayerAttribution.interpolate(attribution, (224, 224))

    results["Captum LayerGradCam, one call"] = p50_ms(captum_call, args.repeats)

    from torchcam.methods import GradCAM as TorchCamGradCAM

    def torchcam_call():
        with TorchCamGradCAM(model, target_layer="layer4") as extractor:
            scores = model(input_tensor)
            extractor(7, scores)

    results["torchcam GradCAM, one call"] = p50_ms(torchcam_call, args.repeats)

    baseline = results["pytorch-grad-cam GradCAM, one call"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, ResNet-50 (random weights), "
          f"224x224, p50 of {args.repeats}")
    print(f"{'what':40s} {'p50 ms':>8s} {'pytorch-grad-cam / this':>24s}")
    for name, ms in results.items():
        print(f"{name:40s} {ms:8.1f} {baseline / ms:23.1f}x")


if __name__ == "__main__":
    main()
