"""The trust helpers against what a researcher's own model and data bring: hooks of their own,
a model that flattens with .view, more or fewer than 1000 classes, maps with NaN or in bfloat16,
a new head, a twin frozen by hand. Found by an adversarial review of the faster helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from helpers.modelstate import shared_twin
from helpers.shortcut import frozen_backbone_experiment
from helpers.trust import deletion_curve, guided_backprop, guided_model, insertion_curve, random_like, saliency, \
    score_along_path


class LeNet(nn.Module):
    """A classic small CNN: flattens with .view, so it cannot take channels-last input."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv, self.relu, self.pool = nn.Conv2d(3, 6, 5), nn.ReLU(), nn.MaxPool2d(2)
        self.fc = nn.Linear(6 * 14 * 14, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu(self.conv(x)))
        return self.fc(x.view(x.size(0), -1))


def _model(classes: int = 10) -> LeNet:
    torch.manual_seed(0)
    return LeNet(classes).eval()


def test_guided_backprop_never_hooks_the_callers_modules():
    """Another thread that trains or explains the model meanwhile must see plain ReLUs."""
    model, x = _model(), torch.randn(1, 3, 32, 32)
    seen = []
    model.relu.register_forward_hook(lambda module, inputs, output: seen.append(len(model.relu._forward_hooks)))
    pixel_map = guided_backprop(model, 3, x)
    assert seen == [1], "guided backprop added a hook to the caller's own ReLU during the call"
    assert len(model.relu._forward_hooks) == 1
    twin_map = guided_backprop(model, 3, x, guided_model(model))
    assert np.allclose(pixel_map, twin_map, atol=1e-6)
    plain = saliency(model, 3, x)
    assert not np.allclose(pixel_map, plain, atol=1e-3), "guided and plain gradients should differ"


def test_a_wrong_guided_argument_is_named():
    model, x = _model(), torch.randn(1, 3, 32, 32)
    for wrong in (model, True):
        with pytest.raises(TypeError, match="guided must be a twin made by guided_model"):
            guided_backprop(model, 3, x, guided=wrong)


def test_curves_of_a_model_that_flattens_with_view():
    model, x = _model(), torch.randn(1, 3, 32, 32)
    heatmap = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    deletion, insertion = deletion_curve(model, x, 3, heatmap, steps=4), insertion_curve(model, x, 3, heatmap, steps=4)
    assert deletion.shape == insertion.shape == (5,)
    assert np.isclose(deletion[0], insertion[-1], atol=1e-5)        # both: the intact image


def test_class_ids_are_checked_against_the_models_own_classes():
    x = torch.randn(1, 3, 32, 32)
    big = _model(2000)
    assert saliency(big, 1500, x).shape == (32, 32)                  # not refused as "0..999"
    assert score_along_path(big, 1500, x, steps=2)[1].shape == (3,)
    small = _model(10)
    for call in (lambda: saliency(small, 50, x), lambda: guided_backprop(small, 50, x),
                 lambda: score_along_path(small, 50, x, steps=2)):
        with pytest.raises(ValueError, match=r"class_id must be an int in 0\.\.9, got 50"):
            call()


def test_a_heatmap_with_nan_is_refused_and_a_bfloat16_one_is_read():
    model, x = _model(), torch.randn(1, 3, 32, 32)
    heatmap = torch.rand(32, 32)
    bad = heatmap.clone()
    bad[3, 4] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        deletion_curve(model, x, 3, bad, steps=4)
    assert np.allclose(deletion_curve(model, x, 3, heatmap.bfloat16(), steps=4),
                       deletion_curve(model, x, 3, heatmap.bfloat16().float(), steps=4))


def test_random_like_a_model_given_a_new_head():
    model = _model()
    model.lesson_name = "resnet50"                 # the lesson's ResNet-50 with a 10-class head, say
    fresh = random_like(model, seed=0)
    assert fresh.fc.out_features == 10 and not torch.equal(fresh.fc.weight, model.fc.weight)


def test_a_twin_frozen_by_hand_leaves_the_model_trainable():
    model = _model()
    twin = shared_twin(model).requires_grad_(False)
    assert all(p.requires_grad for p in model.parameters())
    assert twin.conv.weight.data_ptr() == model.conv.weight.data_ptr()     # shared, not copied
    twin.double()
    assert model.conv.weight.dtype == torch.float32


def test_the_frozen_backbone_experiment_leaves_the_callers_random_stream():
    from torchvision.models import resnet18

    backbone = resnet18(weights=None).eval()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    frozen_backbone_experiment(backbone, seed=0, n_train=8, n_test=4, epochs=1)
    assert torch.equal(torch.rand(3), expected), "the experiment reseeded or used the caller's generator"


def test_guided_models_twin_keeps_the_callers_hooks_on_its_activations():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))

    def ablate(module, inputs, output):            # the caller's own hook: channels 0 and 1 switched off
        output = output.clone()
        output[:, :2] = 0
        return output

    model[1].register_forward_hook(ablate)
    x = torch.randn(1, 3, 32, 32)
    twin = guided_model(model)
    assert len(twin[1]._forward_hooks) == 1 and len(model[1]._forward_hooks) == 1
    assert np.allclose(guided_backprop(model, 0, x), guided_backprop(model, 0, x, twin), atol=1e-6)


def test_a_wrapper_and_its_model_share_one_lock():
    from helpers.modelstate import model_lock

    model = _model()
    assert model_lock(nn.DataParallel(model)) is model_lock(model)


def test_a_hook_that_is_a_method_of_the_model_writes_to_the_models_copy_not_the_model():
    from helpers.cam import compute_cams

    class Keeps(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.relu, self.fc = nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Linear(4, 3)
            self.features = None
            self.conv.register_forward_hook(self._keep)

        def _keep(self, module, inputs, output):
            self.features = output

        def forward(self, x):
            return self.fc(self.relu(self.conv(x)).mean((2, 3)))

    torch.manual_seed(0)
    model = Keeps().eval()
    model(torch.randn(1, 3, 16, 16))
    mine = model.features                                  # the caller's own features, 14x14
    compute_cams(model, [model.conv], [0], torch.randn(1, 3, 24, 24))
    guided_backprop(model, 0, torch.randn(1, 3, 24, 24))
    deletion_curve(model, torch.randn(1, 3, 32, 32), 0, np.random.default_rng(0).random((32, 32)), steps=2)
    assert model.features is mine
    model(torch.randn(1, 3, 20, 20))                       # the model's own hook still works on the model
    assert tuple(model.features.shape) == (1, 4, 18, 18)


def test_a_small_image_has_curves_and_too_many_steps_are_named():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 3)).eval()
    x, heatmap = torch.randn(1, 3, 8, 8), np.random.default_rng(0).random((8, 8))
    assert deletion_curve(model, x, 0, heatmap, steps=4).shape == (5,)
    with pytest.raises(ValueError, match="steps=65 is more than the image's 64 pixels"):
        deletion_curve(model, x, 0, heatmap, steps=65)
