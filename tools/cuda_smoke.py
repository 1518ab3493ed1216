#!/usr/bin/env python3
"""A smoke test of the helpers on a CUDA GPU: every map computed with the model on the GPU must
equal the map computed on the CPU. For a machine with an NVIDIA GPU; the lesson itself uses the CPU.

    python tools/cuda_smoke.py            # prints one line per check, exits 1 if any differs

It uses the offline stand-in (EfficientNet-Lite0) and ResNet-50's architecture with random
weights, so nothing is downloaded. Set LESSON_DATA_MIRROR if the lesson images are not cached.
"""

from __future__ import annotations

import copy
import sys
import time

import numpy as np
import torch


PIXEL_MAPS = {"saliency", "guided backprop"}


def main() -> int:
    from helpers import compute_cams, default_target_layers, fetch, gradcam, load_image, load_model
    from helpers.trust import deletion_curve, guided_backprop, saliency

    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing to check")
        return 0
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
    # full float32 on the GPU (no TF32), so that the GPU's maps can be held to the CPU's
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    input_tensor, _ = load_image(fetch("both.png"))
    torch.manual_seed(0)
    failures = 0
    for name in ("efficientnet_lite0", "resnet50_untrained"):
        cpu_model = load_model(name)
        gpu_model = copy.deepcopy(cpu_model).to("cuda")
        checks = {
            "gradcam 281": lambda m: gradcam(m, default_target_layers(m), 281, input_tensor),
            "GradCAM++ top": lambda m: gradcam(m, default_target_layers(m), None, input_tensor, method="GradCAM++"),
            "EigenCAM": lambda m: gradcam(m, default_target_layers(m), 245, input_tensor, method="EigenCAM"),
            "batch of 2": lambda m: compute_cams(m, default_target_layers(m), [245, 281],
                                                 input_tensor.repeat(2, 1, 1, 1))[0],
            "saliency": lambda m: saliency(m, 281, input_tensor),
            "guided backprop": lambda m: guided_backprop(m, 281, input_tensor),
            "deletion curve": lambda m: deletion_curve(m, input_tensor, 281,
                                                       gradcam(m, default_target_layers(m), 281, input_tensor),
                                                       steps=8),
        }
        for check, compute in checks.items():
            start = time.perf_counter()
            on_cpu = np.asarray(compute(cpu_model))
            on_gpu = np.asarray(compute(gpu_model))
            seconds = time.perf_counter() - start
            # TF32 and other kernels differ in the last bits; maps are in [0, 1]
            difference = float(np.abs(on_cpu - on_gpu).max())
            mean_difference = float(np.abs(on_cpu - on_gpu).mean())
            # pixel-level gradients (saliency, guided backprop) go back through the whole network:
            # single pixels may differ more (other convolution algorithms); their mean must agree
            ok = on_cpu.shape == on_gpu.shape and (difference < 2e-2 or check in PIXEL_MAPS and mean_difference < 1e-2)
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {name:20s} {check:16s} max |cpu - gpu| = {difference:.2e}, "
                  f"mean {mean_difference:.1e} "
                  f"({seconds:.2f} s)")
        assert next(gpu_model.parameters()).is_cuda and not gpu_model.training
    print("all equal" if not failures else f"{failures} checks differ")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
