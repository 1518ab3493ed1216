"""Episode 9's shortcut experiment (issue 17): a small CNN learns a stamp and GradCAM finds it, on a photo
training never saw; the model trained without the stamp barely reacts to it, yet its GradCAM often lands on
the stamp too; a frozen pretrained backbone with a new head learns the stamp while GradCAM misses it.

Two fixed seeds, each the whole experiment as the episode runs it (both models and the maps).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.claims import share_on
from helpers.shortcut import (CAT, DOG, FROZEN_SIZE, SIZE, STAMP_BOX, TEST_PHOTOS, TRAIN_PHOTOS, animal_boxes,
                              dog_maps, frozen_backbone, frozen_backbone_experiment, in_stamp, make_data,
                              peak_distance, run_experiment, small_cnn, stamp)

SEEDS = (0, 1)


@pytest.fixture(scope="module", params=SEEDS)
def result(request):
    outcome = run_experiment(seed=request.param, progress=False)
    outcome.seed = request.param                 # for tests that remake the same data
    return outcome


def test_the_shortcut_model_follows_the_stamp_on_a_photo_it_never_saw(result):
    scores = result.scores
    assert scores["shortcut: stamp on dogs"] >= 0.9
    assert scores["shortcut: stamp on cats"] <= 0.2


def test_without_the_stamp_the_model_knows_its_photos_and_the_stamp_matters_far_less(result):
    """How well it does on the new photo depends on the seed (0.50 with seed 0, 0.94 with seed 1): the
    episode prints it and says so. What holds: it knows its training photos, and moving the stamp
    changes its answers far less than the shortcut model's."""
    scores = result.scores
    assert scores["fix: no stamp, training photos"] >= 0.85
    shortcut_swing = scores["shortcut: stamp on dogs"] - scores["shortcut: stamp on cats"]
    assert abs(scores["fix: stamp on dogs"] - scores["fix: stamp on cats"]) <= 0.3 < shortcut_swing - 0.5


def test_gradcam_peaks_on_the_stamp_whether_or_not_the_model_uses_it(result):
    scores = result.scores
    assert result.shortcut_maps.shape == result.fixed_maps.shape == (100, SIZE, SIZE)
    median = float(np.median(in_stamp(result.shortcut_maps)))
    assert scores["shortcut: GradCAM in stamp (median)"] == pytest.approx(median)
    assert scores["shortcut: GradCAM in stamp (median)"] >= 0.6
    assert scores["shortcut: peaks within 10 px of stamp"] >= 0.8
    # the model that never saw a stamp: its "dog" map on a new photo often lands on the stamp too,
    # far more often than a peak placed at random would (a 10 px disc covers about 8% of 64x64);
    # how often varies with the seed and the machine's threads (seed 1: 0.38 to 0.60 seen)
    assert scores["fix: peaks within 10 px of stamp"] >= (0.4 if result.seed == 0 else 0.2)


def test_where_the_model_without_the_stamp_looks(result):
    """Its "dog" maps of the unstamped dog crops lie on the grass, well above a uniform map's share."""
    data = make_data(seed=result.seed)
    dogs = (data.test_labels == DOG).numpy()
    assert torch.equal(stamp(data.test_images), result.test_images)          # the same test crops
    maps = dog_maps(result.fixed_model, data.test_images[dogs])
    on_grass, grass_area = share_on(maps, data.test_windows[dogs], "grass")
    assert np.median(on_grass) >= 2 * np.median(grass_area)


def test_a_frozen_backbone_learns_the_stamp_and_gradcam_misses_it(stand_in):
    before = {k: v.clone() for k, v in stand_in.state_dict().items()}
    settings = [(name, p.requires_grad, p.stride(), p.grad) for name, p in stand_in.named_parameters()]
    modules = [(name, type(m), m.training, dict(m._forward_hooks)) for name, m in stand_in.named_modules()]
    scores = frozen_backbone_experiment(stand_in, seed=0)
    assert scores["frozen: stamp on dogs"] - scores["frozen: stamp on cats"] >= 0.3      # it uses the stamp
    assert scores["frozen: peaks within 10 px of stamp"] <= 0.5                             # GradCAM misses it
    assert scores["frozen: GradCAM in stamp (median)"] <= 0.5
    # the backbone is untouched: weights, BatchNorm statistics, requires_grad, memory order, modules, hooks
    assert all(torch.equal(before[k], v) for k, v in stand_in.state_dict().items())
    assert [(name, p.requires_grad, p.stride(), p.grad) for name, p in stand_in.named_parameters()] == settings
    assert [(name, type(m), m.training, dict(m._forward_hooks)) for name, m in stand_in.named_modules()] == modules


def test_the_frozen_backbone_is_a_twin_that_shares_the_weights(stand_in):
    model, pooled, head_name = frozen_backbone(stand_in)
    assert head_name == "classifier" and pooled is model[1].bn2 and not model[1].training
    assert model[1].conv_stem.weight.data_ptr() == stand_in.conv_stem.weight.data_ptr()   # nothing copied
    model[1].set_submodule(head_name, torch.nn.Identity())
    assert isinstance(stand_in.classifier, torch.nn.Linear)                          # the original keeps its head
    crops = torch.rand(2, 3, SIZE, SIZE)
    assert model[0](crops).shape == (2, 3, FROZEN_SIZE, FROZEN_SIZE) and model(crops).shape == (2, 1280)


def test_share_on_maps_the_photos_regions_into_each_crop():
    data = make_data(seed=3, n_train=4, n_test=6)
    count = len(data.test_images)
    assert data.test_windows.shape == (count, 4)
    uniform = np.ones((count, SIZE, SIZE), np.float32)
    shares, areas = share_on(uniform, data.test_windows, "dog")
    assert np.allclose(shares, areas) and ((0 < areas) & (areas <= 1)).all()
    # the largest square crop at the photo's left (dog_cat.jfif is 284 x 177): the dog's box is x 0..0.56
    left_square = np.array([[0.0, 0.0, 177 / 284, 0.0]], np.float32)
    mirrored = np.array([[0.0, 0.0, 177 / 284, 1.0]], np.float32)
    edge = np.zeros((1, SIZE, SIZE), np.float32)
    edge[0, :, :4] = 1.0                       # the crop's 4 leftmost columns
    assert share_on(edge, left_square, "dog")[0][0] == pytest.approx(61 / 64)   # all but the top 5% (3 rows)
    assert share_on(edge, mirrored, "dog")[0][0] == 0.0          # mirrored, they show x 0.58..0.62: the kitten


def test_animal_boxes_move_scale_and_mirror_the_animals_box_into_each_crop():
    # the largest square crop at the left of dog_cat.jfif (284 x 177): 64 px for 177; the dog is x 0..160, y 12..177
    windows = np.array([[0.0, 0.0, 177 / 284, 0.0], [0.0, 0.0, 177 / 284, 1.0], [0.0, 0.0, 177 / 284, 0.0]])
    boxes = animal_boxes(windows, torch.tensor([DOG, DOG, CAT]))
    scale = 64 / 177
    assert boxes[0] == pytest.approx([0, 12 * scale, 160 * scale, 64], abs=1e-3)
    assert boxes[1] == pytest.approx([64 - 160 * scale, 12 * scale, 64, 64], abs=1e-3)    # mirrored
    assert boxes[2] == pytest.approx([148 * scale, 32 * scale, 64, 64], abs=1e-3)          # the cat, clipped
    data = make_data(seed=3, n_train=4, n_test=6)
    real = animal_boxes(data.test_windows, data.test_labels)
    assert real.shape == (12, 4) and (real >= 0).all() and (real <= SIZE).all()
    # each crop is 1.0 to 1.3 times its animal's longer side: the box spans at least 64 / 1.3 px one way
    assert (np.maximum(real[:, 2] - real[:, 0], real[:, 3] - real[:, 1]) >= 64 / 1.3 - 0.5).all()


def test_the_data_labels_noise_and_stamp():
    data = make_data(seed=3, n_train=40, n_test=10)
    assert data.train_images.shape == (80, 3, SIZE, SIZE) and data.test_images.shape == (20, 3, SIZE, SIZE)
    assert data.seen_images.shape == (20, 3, SIZE, SIZE) and set(TRAIN_PHOTOS).isdisjoint(TEST_PHOTOS)
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
