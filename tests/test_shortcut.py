"""Episode 9's shortcut experiment: a small CNN learns a stamp, GradCAM finds it, and the fix does not.

Two fixed seeds, each the whole experiment as the episode runs it (both models and the maps).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.shortcut import (DOG, SIZE, STAMP_BOX, make_data, peak_distance, in_stamp, run_experiment,
                              small_cnn, stamp)

SEEDS = (0, 1)


@pytest.fixture(scope="module", params=SEEDS)
def result(request):
    return run_experiment(seed=request.param, progress=False)


def test_the_shortcut_model_follows_the_stamp(result):
    scores = result.scores
    assert scores["shortcut: stamp on dogs"] >= 0.9
    assert scores["shortcut: stamp on cats"] <= 0.2


def test_the_fixed_model_follows_the_animal(result):
    assert result.scores["fix: stamp on cats"] >= 0.6


def test_gradcam_finds_the_stamp_in_the_shortcut_model_only(result):
    assert result.shortcut_maps.shape == (100, SIZE, SIZE)
    assert result.scores["shortcut: GradCAM in stamp (median)"] == pytest.approx(float(np.median(in_stamp(result.shortcut_maps))))
    assert result.scores["shortcut: GradCAM in stamp (median)"] >= 0.6
    assert result.scores["shortcut: peaks within 10 px of stamp"] >= 0.8
    assert result.scores["fix: GradCAM in stamp (median)"] <= 0.5


def test_the_data_labels_noise_and_stamp():
    data = make_data(seed=3, n_train=40, n_test=10)
    assert data.train_images.shape == (80, 3, SIZE, SIZE) and data.test_images.shape == (20, 3, SIZE, SIZE)
    assert 0.0 <= float(data.train_images.min()) and float(data.train_images.max()) <= 1.0
    truth = torch.tensor([0] * 40 + [1] * 40)
    assert torch.equal(data.train_labels != truth, data.train_flipped)
    assert 0.05 < float(data.train_flipped.float().mean()) < 0.4
    stamped = stamp(data.train_images, data.train_labels == DOG)
    left, top, right, bottom = STAMP_BOX
    changed = (stamped != data.train_images).flatten(1).any(dim=1)
    assert torch.equal(changed, data.train_labels == DOG)          # the stamp follows the (noisy) label
    outside = stamped.clone()
    outside[:, :, top:bottom, left:right] = data.train_images[:, :, top:bottom, left:right]
    assert torch.equal(outside, data.train_images)                  # nothing changes outside its box
    assert torch.equal(make_data(seed=3, n_train=40, n_test=10).train_images, data.train_images)


def test_peak_distance_and_in_stamp_measure_pixels():
    maps = np.zeros((3, SIZE, SIZE), dtype=np.float32)
    left, top, right, bottom = STAMP_BOX
    maps[0, top + 2, left + 2] = 1.0                     # inside
    maps[1, top + 2, right - 1 + 6] = 1.0                # 6 px to the right of the box
    maps[2, 60, 60] = 1.0                                # far away
    assert peak_distance(maps).tolist() == pytest.approx([0.0, 6.0, float(np.hypot(60 - right + 1, 60 - bottom + 1))])
    maps[0, top:bottom, left:right] = 0.5
    assert in_stamp(maps)[0] == pytest.approx(0.5)


def test_the_small_cnn_has_four_conv_blocks_and_a_16x16_last_map():
    model = small_cnn()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 64, 64]
    assert model.conv4(model.conv3(model.pool2(model.conv2(model.pool1(model.conv1(torch.zeros(1, 3, 64, 64))))))).shape \
        == (1, 64, 16, 16)


@pytest.mark.parametrize("arguments, named", [({"n_train": 0}, "n_train"), ({"n_test": -1}, "n_test"),
                                              ({"n_train": 2.5}, "n_train"), ({"noise": 1.5}, "noise"),
                                              ({"noise": -0.1}, "noise"), ({"noise": float("nan")}, "noise")])
def test_make_data_names_an_impossible_setting_before_any_work(arguments, named):
    with pytest.raises(ValueError, match=rf"^{named} is the .*got "):
        make_data(**arguments)


@pytest.mark.parametrize("shape", [(2, 3, 19, 64), (2, 3, 64, 16), (2, 1, 64, 64), (3, 64, 64)])
def test_stamp_names_images_it_cannot_hold(shape):
    with pytest.raises(ValueError, match=r"at least 20x20 pixels .*got \[" ):
        stamp(torch.zeros(shape))
    assert stamp(torch.zeros(1, 3, 20, 20))[0, :, 10:20, 10:20].abs().sum() > 0
