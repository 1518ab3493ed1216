"""Issue 24: the caller's model is left as it was, also while other threads use it, and models the helpers
cannot run (TorchScript, the meta device) or could not before (built under inference_mode) get a fix that
runs; an explorer whose model changed says to run explore again."""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest
import torch
from torch import nn

from helpers import explore, gradcam
from helpers.modelstate import eval_copy, model_lock
from test_targets import run_advice


class Net(nn.Module):
    """A small CNN with BatchNorm (its statistics and mode matter)."""

    def __init__(self, classes: int = 6) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


class Recorder(nn.Module):
    """Records, for each forward pass on another thread than the helpers', whether it ran in training mode."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = []
        self.watch = None

    def forward(self, x):
        if threading.get_ident() == self.watch:
            self.seen.append(self.training)
        return x


class Dropping(nn.Module):
    """Dropout and no BatchNorm: running it in training mode changes no weight and no statistic."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), Recorder(), nn.Dropout(0.5))
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


def test_another_threads_predictions_never_fire_the_helpers_hooks():
    """A demo app: one thread serves predictions, another explains them (37 of 40 calls failed before)."""
    model, x = Net().eval(), torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    served_input = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    expected_map = gradcam(model, [model.features[3]], 2, x)
    with torch.no_grad():
        expected_prediction = model(served_input)
    stop, served, wrong = threading.Event(), [], []

    def serve():
        while not stop.is_set():
            with torch.no_grad():
                prediction = model(served_input)
            served.append(1)
            if not torch.equal(prediction, expected_prediction):
                wrong.append(prediction)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        maps = [gradcam(model, [model.features[3]], 2, x) for _ in range(40)]
    finally:
        stop.set()
        server.join(30)
    assert len(served) > 10 and wrong == []
    assert all(np.abs(m - expected_map).max() < 1e-6 for m in maps)
    assert not any(m._forward_hooks for m in model.modules()) and not model.training


def test_a_model_used_in_training_mode_on_another_thread_is_never_switched_under_it():
    model, x = Dropping().train(), torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    expected = gradcam(model, [model.features[0]], 1, x)
    recorder, stop, overlapping = model.features[2], threading.Event(), []
    explaining = threading.Event()

    def train_mode_passes():                       # Monte-Carlo dropout, or a training loop's forward passes
        recorder.watch = threading.get_ident()
        while not stop.is_set():
            with torch.no_grad():
                model(torch.randn(2, 3, 16, 16))
            if explaining.is_set():
                overlapping.append(1)

    worker = threading.Thread(target=train_mode_passes, daemon=True)
    worker.start()
    try:
        explaining.set()
        maps = [gradcam(model, [model.features[0]], 1, x) for _ in range(30)]
        time.sleep(0.05)
        explaining.clear()
    finally:
        stop.set()
        worker.join(30)
    assert len(overlapping) > 5, "the other thread never ran while GradCAM did"
    assert recorder.seen and all(recorder.seen), f"{recorder.seen.count(False)} passes ran in eval mode"
    assert all(np.abs(m - expected).max() < 1e-6 for m in maps)          # dropout off in GradCAM's copy
    assert model.training and all(m.training for m in model.modules())


def test_a_training_thread_that_takes_the_models_lock_and_gradcam_take_turns():
    model, x = Net().train(), torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    first = {name: t.clone() for name, t in model.state_dict().items()}
    errors, steps = [], []

    def train():
        for _ in range(15):
            with model_lock(model):                     # the helpers wait for a step to end, and it for them
                loss = model(torch.randn(4, 3, 32, 32)).logsumexp(1).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            steps.append(model.training)

    trainer = threading.Thread(target=train)
    trainer.start()
    maps = []
    while trainer.is_alive() or len(maps) < 5:
        try:
            maps.append(gradcam(model, [model.features[3]], 1, x))
        except Exception as error:  # noqa: BLE001 - counted
            errors.append(repr(error))
    trainer.join(60)
    assert errors == [] and steps == [True] * 15 and len(maps) >= 5
    assert all(m.shape == (32, 32) and np.isfinite(m).all() for m in maps)
    assert not torch.equal(first["fc.weight"], model.state_dict()["fc.weight"])      # it did train


def test_a_model_built_under_inference_mode_is_explained_and_left_so():
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    normal = Net().eval()
    with torch.inference_mode():
        frozen = Net().eval()
    assert frozen.fc.weight.is_inference()
    ours = gradcam(frozen, [frozen.features[3]], 3, x)
    assert np.abs(ours - gradcam(normal, [normal.features[3]], 3, x)).max() < 1e-6
    assert frozen.fc.weight.is_inference() and all(p.is_inference() for p in frozen.parameters())


def test_a_model_on_the_meta_device_is_told_how_to_get_weights_and_the_fix_runs():
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    real = Net().eval()
    with torch.device("meta"):
        model = Net().eval()
    with pytest.raises(ValueError, match="meta device: they have shapes but no values") as error:
        gradcam(model, [model.features[3]], 1, x)
    advice = run_advice(str(error.value), {"model": model, "state_dict": real.state_dict()})
    fixed = advice["model"]
    assert np.abs(gradcam(fixed, [fixed.features[3]], 1, x) - gradcam(real, [real.features[3]], 1, x)).max() < 1e-6


def test_torchscript_is_named_and_the_python_model_with_its_weights_runs():
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with pytest.warns(FutureWarning):                     # torch.jit.script is deprecated, but models still ship so
        model = torch.jit.script(Net().eval())
    with pytest.raises(ValueError, match=r"TorchScript.*register_forward_hook is not supported") as error:
        gradcam(model, [model.features[3]], 1, x)
    advice = run_advice(str(error.value), {"model": model, "YourModelClass": Net})
    plain = advice["plain"].eval()
    with torch.no_grad():
        assert torch.equal(plain(x), model(x))
    assert gradcam(plain, [plain.features[3]], 1, x).max() > 0.99


def test_an_eval_copy_shares_weights_and_leaves_modes_hooks_and_attributes():
    model = Net().train()
    model.features[1].eval()
    with eval_copy(model) as running:
        copied = running.of(model.features[3])
        assert copied is not model.features[3] and copied.weight is model.features[3].weight
        assert running.original(copied) is model.features[3] and not running.module.training
        copied.register_forward_hook(lambda *args: None)
        copied.stride = (1, 1)                             # what Swin does to its window_size
    assert model.training and not model.features[1].training and model.features[0].training
    assert not model.features[3]._forward_hooks and model.features[3].stride == (2, 2)


def test_the_explorer_of_a_model_given_a_new_head_says_to_run_explore_again(both):
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = resnet18(weights=None).eval()
    widget = explore(model, [model.layer4], *both)
    explorer = widget.explorer
    model.fc = nn.Linear(512, 10)                           # a new head for 10 classes of one's own
    explorer.class_choice.value = [v for _, v in explorer.class_choice.options][1]
    message = explorer.message.value
    assert "now gives 10 class scores, not 1000" in message and "Run the explore(...) cell again" in message
    assert "index" not in message and "out of bounds" not in message
    again = explore(model, [model.layer4], *both).explorer             # what the message says: it works
    assert len(again.state.names) == 10 and again.state.names[3] == "class 3"
    assert "class" in again.status.value and re.search(r"probability [\d.]+%", again.status.value)
