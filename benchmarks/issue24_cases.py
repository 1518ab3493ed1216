"""Issue 24's cases, each run and its outcome printed in one line: run it with the helpers before and
after the fix, to fill the issue's closing table.

    PYTHONPATH=/path/to/old/checkout python benchmarks/issue24_cases.py     # before
    PYTHONPATH=. python benchmarks/issue24_cases.py                         # after

Random weights and small inputs throughout; nothing is downloaded (HF_HUB_OFFLINE=1, LESSON_OFFLINE=1).
Needs the lesson's images (LESSON_DATA_MIRROR) and transformers.
"""

from __future__ import annotations

import io
import os
import re
import sys
import threading
import traceback
from contextlib import redirect_stdout

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LESSON_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

import helpers  # noqa: E402
from helpers import default_target_layers, fetch, gradcam, load_image, viz_gradcam  # noqa: E402

CASES = []


def case(name):
    def register(function):
        CASES.append((name, function))
        return function
    return register


def short(text, width=150):
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 3] + "..."


class SmallCNN(nn.Module):
    def __init__(self, classes=10, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


X = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
RGB = np.zeros((32, 32, 3), np.float32)


def printed(function):
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        function()
    return buffer.getvalue().strip()


@case("1 HF Swin (224 px, window 7): its own outputs after default_target_layers")
def _():
    import transformers

    torch.manual_seed(0)
    model = transformers.SwinForImageClassification(transformers.SwinConfig(      # Swin-T's layout, tiny widths
        image_size=224, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=7,
        num_labels=5)).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        before = model(x).logits
    try:
        found = f"default layer {type(default_target_layers(model)[0]).__name__}"
    except Exception as error:  # noqa: BLE001
        found = f"{type(error).__name__}: {short(error, 60)}"
    try:
        with torch.no_grad():
            after = model(x).logits
        return f"{found}; outputs at 224 px unchanged: {torch.equal(before, after)}"
    except Exception as error:  # noqa: BLE001
        return f"{found}; then the model itself fails at 224 px: {type(error).__name__}: {short(error, 60)}"


@case("2a 21,843 classes: viz_gradcam")
def _():
    model = SmallCNN(21843).eval()
    return short(printed(lambda: viz_gradcam(model, [model.features[2]], 3, X, RGB, show=False)))


@case("2b 10 classes: viz_gradcam's line")
def _():
    model = SmallCNN(10).eval()
    return short(printed(lambda: viz_gradcam(model, [model.features[2]], 3, X, RGB, show=False)))


@case("2c regression (1 output): viz_gradcam's line")
def _():
    model = SmallCNN(1).eval()
    return short(printed(lambda: viz_gradcam(model, [model.features[2]], None, X, RGB, show=False)))


def multi_label_vit():
    import transformers

    torch.manual_seed(0)
    labels = {0: "cat", 1: "dog", 2: "car"}
    config = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=2,
                                    num_attention_heads=2, intermediate_size=32, num_labels=3, id2label=labels,
                                    label2id={v: k for k, v in labels.items()},
                                    problem_type="multi_label_classification")
    return transformers.ViTForImageClassification(config).eval()


@case("2d+e multi-label HF ViT with id2label: viz_gradcam's line (sigmoid p of 'dog' in brackets)")
def _():
    model = multi_label_vit()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        p = torch.sigmoid(model(x).logits[0, 1]).item()
    line = printed(lambda: viz_gradcam(model, default_target_layers(model), 1, x, RGB, show=False))
    return short(f"[{p:.3g}] {line}")


@case("3a float TIFF in [0, 1]: load_image's largest value")
def _():
    buffer = io.BytesIO()
    Image.fromarray(np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)).save(buffer, format="TIFF")
    kept = []
    said = printed(lambda: kept.append(load_image(buffer.getvalue(), size=64)[1].max()))
    return short(f"max {kept[0]:.4f}; " + (f"printed: {said}" if said else "nothing printed"))


@case("3b 12-bit data in a 16-bit PNG: load_image's largest value")
def _():
    buffer = io.BytesIO()
    Image.fromarray((np.linspace(0, 1, 64 * 64) * 4095).astype(np.uint16).reshape(64, 64)).save(buffer, format="PNG")
    kept = []
    said = printed(lambda: kept.append(load_image(buffer.getvalue(), size=64)[1].max()))
    return short(f"max {kept[0]:.4f}; " + (f"printed: {said}" if said else "nothing printed"))


class WithBN(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


@case("4a a thread serving predictions while 40 gradcam calls run")
def _():
    model = WithBN().eval()
    stop, failures = threading.Event(), []

    def serve():
        while not stop.is_set():
            with torch.no_grad():
                model(torch.randn(4, 3, 32, 32))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    for _ in range(40):
        try:
            gradcam(model, [model.features[3]], 1, X)
        except Exception as error:  # noqa: BLE001
            failures.append(short(f"{type(error).__name__}: {error}", 90))
    stop.set()
    thread.join(10)
    return f"{len(failures)} of 40 failed" + (f"; first: {failures[0]}" if failures else "")


@case("4b a thread running the model in training mode while gradcam runs: passes it saw in eval mode")
def _():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Dropout(0.5), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 3)).train()
    seen, stop = [], threading.Event()
    worker_id = []

    def look(module, inputs, output):
        if threading.get_ident() in worker_id:
            seen.append(module.training)

    model[2].register_forward_hook(look)

    def work():
        worker_id.append(threading.get_ident())
        while not stop.is_set():
            with torch.no_grad():
                model(torch.randn(2, 3, 16, 16))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    for _ in range(30):
        gradcam(model, [model[0]], 1, X[..., :16, :16])
    stop.set()
    thread.join(10)
    return f"{seen.count(False)} of {len(seen)} passes in eval mode"


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = SmallCNN(16)
        self.species, self.age = nn.Linear(16, 5), nn.Linear(16, 1)

    def forward(self, x):
        features = self.body(x)
        return {"species": self.species(features), "age": self.age(features)}


def advice_outcome(model, layers, x, message):
    """Run the message's advice (ClassScores(...) or target=...) and say what happened."""
    from helpers.models import ClassScores

    found = re.findall(r"(ClassScores\([^)`]*\)(?:\([^)`]*\))?|target=lambda output: [^`]+?)(?:`|\s\(|\.\s|$)",
                       message)
    if not found:
        return "no code suggested"
    outcomes = []
    for code in found:
        try:
            if code.startswith("ClassScores"):
                gradcam(eval(code, {"ClassScores": ClassScores, "model": model}), layers, 0, x)
            else:
                gradcam(model, layers, eval(code.split("=", 1)[1], {"torch": torch}), x)
            outcomes.append(f"{short(code, 60)} runs")
        except Exception as error:  # noqa: BLE001
            outcomes.append(f"{short(code, 60)} raises {type(error).__name__}")
    return "; ".join(outcomes)


def error_and_advice(model, layers, x, target=None):
    try:
        gradcam(model, layers, target, x)
        return "no error"
    except Exception as error:  # noqa: BLE001
        return f"{type(error).__name__}: {short(error, 100)} -> {advice_outcome(model, layers, x, str(error))}"


@case("5a a dict of two heads, class 0")
def _():
    model = TwoHeads().eval()
    return error_and_advice(model, [model.body.features[2]], X, 0)


def detector():
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    torch.manual_seed(0)
    return fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, num_classes=3, min_size=128,
                                                 max_size=128, box_score_thresh=0.0).eval()


def deeplab():
    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

    torch.manual_seed(0)
    return deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=4).eval()


@case("5b detection, no target")
def _():
    model = detector()
    return error_and_advice(model, [model.backbone.body["16"]], torch.rand(1, 3, 128, 128), None)


@case("5c/5d segmentation [N, C, H, W] (torchvision's dict), no target")
def _():
    model = deeplab()
    return error_and_advice(model, [model.backbone["16"]], torch.randn(1, 3, 64, 64), None)


@case("5d one score per image [N], no target")
def _():
    model = nn.Sequential(SmallCNN(1), nn.Flatten(0)).eval()
    try:
        return f"map of shape {gradcam(model, [model[0].features[2]], None, X).shape}"
    except Exception as error:  # noqa: BLE001
        return f"{type(error).__name__}: {short(error, 120)}"


@case("6a DeepLab's default target layer")
def _():
    from helpers.models import layer_choices

    model = deeplab()
    return f"{list(layer_choices(model))[0]}"


@case("6b Faster R-CNN's default target layer")
def _():
    from helpers.models import layer_choices

    model = detector()
    return f"{list(layer_choices(model))[0]}"


@case("7a a model on the meta device")
def _():
    with torch.device("meta"):
        model = SmallCNN()
    try:
        gradcam(model, [model.features[2]], 1, X)
        return "no error"
    except Exception as error:  # noqa: BLE001
        return f"{type(error).__name__}: {short(error, 130)}"


@case("7b a model built under inference_mode")
def _():
    with torch.inference_mode():
        model = SmallCNN().eval()
    try:
        return f"map of shape {gradcam(model, [model.features[2]], 1, X).shape}"
    except Exception as error:  # noqa: BLE001
        return f"{type(error).__name__}: {short(error, 130)}"


@case("7c TorchScript")
def _():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = torch.jit.script(SmallCNN().eval())
    try:
        gradcam(model, [model.features[2]], 1, X)
        return "no error"
    except Exception as error:  # noqa: BLE001
        return f"{type(error).__name__}: {short(error, 130)}"


@case("7d HF ViT at the wrong size")
def _():
    model = multi_label_vit()
    try:
        gradcam(model, default_target_layers(model), 1, torch.randn(1, 3, 48, 48))
        return "no error"
    except Exception as error:  # noqa: BLE001
        return f"{type(error).__name__}: {short(error, 130)}"


@case("8 the explorer after model.fc = nn.Linear(512, 10)")
def _():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = resnet18(weights=None).eval()
    x, rgb = load_image(fetch("both.png"))
    explorer = helpers.explore(model, [model.layer4], x, rgb).explorer
    model.fc = nn.Linear(512, 10)
    explorer.class_choice.value = [v for _, v in explorer.class_choice.options][1]
    return short(re.sub("<[^>]+>", " ", explorer.message.value), 160)


@case("9 reference.md's preprocessing against load_image (1000x750, 640x427, 337x250, 4000x100)")
def _():
    from pathlib import Path

    text = Path(helpers.__file__).resolve().parent.parent.joinpath("learners", "reference.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S)
                 if b.startswith("# helpers: input_tensor = load_image("))
    results = []
    import tempfile

    for width, height in [(1000, 750), (640, 427), (337, 250), (4000, 100)]:
        with tempfile.TemporaryDirectory() as folder:
            Image.new("RGB", (width, height), (120, 80, 40)).save(Path(folder) / "both.png")
            here = os.getcwd()
            os.chdir(folder)
            try:
                space = {}
                exec(block, space)
            finally:
                os.chdir(here)
            ours = load_image(Path(folder) / "both.png")[0]
        results.append(f"{width}x{height}: {tuple(space['input_tensor'].shape[-2:])} vs {tuple(ours.shape[-2:])}")
    return "; ".join(results)


@case("10 viz_gradcam on a batch of 8")
def _():
    model = SmallCNN().eval()
    try:
        viz_gradcam(model, [model.features[2]], 3, X.repeat(8, 1, 1, 1), RGB, show=False)
        return "no error"
    except Exception as error:  # noqa: BLE001
        return f"{type(error).__name__}: {short(error, 130)}"


@case("11a load_image(model=<HF ViT>): the tensor's mean and std (0.5 and 0.5: the processor's)")
def _():
    model = multi_label_vit()
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        x, rgb = load_image(fetch("both.png"), model=model)
    back = x[0, 0].numpy()
    std = float(np.std(rgb[..., 0]) / np.std(back))
    said = buffer.getvalue().strip()
    return f"red channel: std {std:.3f}, mean {float(np.mean(rgb[..., 0]) - np.mean(back) * std):.3f}" + \
        (f"; printed: {short(said, 90)}" if said else "; nothing printed")


@case("11b load_image(model=<Faster R-CNN>): what the model gets (its transform normalises again)")
def _():
    model = detector()
    x, rgb = load_image(fetch("both.png"), model=model)
    return f"tensor from {float(x.min()):.2f} to {float(x.max()):.2f}; the same as rgb_image: " \
           f"{bool(np.abs(x[0].permute(1, 2, 0).numpy() - rgb).max() < 1e-6)}"


@case("11c an embedding (HF ViTModel), no target")
def _():
    import transformers

    torch.manual_seed(0)
    model = transformers.ViTModel(transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=16,
                                                         num_hidden_layers=2, num_attention_heads=2,
                                                         intermediate_size=32)).eval()
    try:
        gradcam(model, default_target_layers(model), None, torch.randn(1, 3, 32, 32))
        return "a map, no word"
    except Exception as error:  # noqa: BLE001
        return f"{type(error).__name__}: {short(error, 130)}"


if __name__ == "__main__":
    print(f"helpers from {os.path.dirname(helpers.__file__)}")
    wanted = sys.argv[1:]
    for name, function in CASES:
        if wanted and not any(name.startswith(w) for w in wanted):
            continue
        try:
            outcome = function()
        except Exception as error:  # noqa: BLE001
            outcome = f"{type(error).__name__}: {short(error, 130)}"
            if os.environ.get("CASES_TRACEBACK"):
                traceback.print_exc()
        print(f"{name}: {outcome}", flush=True)
