import numpy as np
import pytest
import torch

from helpers import LESSON_CLASSES, default_target_layers, fetch, gradcam, load_image
from helpers.trust import (area_under, deletion_curve, edge_map, explain_images, guided_backprop, guided_model,
                           insertion_curve, randomisation_check, randomised_models, saliency, spearman)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_gradcam_fails_to_survive_randomisation_as_it_should(stand_in, both):
    """Adebayo et al.'s check: re-initialise classifier, head and last block, 5 seeds x 11 classes."""
    before = _state(stand_in)
    result = randomisation_check(stand_in, default_target_layers, list(LESSON_CLASSES), both[0],
                                 seeds=range(5), stages=3, progress=False)
    assert result["stages"] == "classifier+conv_head+blocks[6]"
    assert result["pairs"] == 55 and len(result["correlations"]) + result["constant"] == 55
    assert result["constant"] < 10                      # counted and reported, not dropped
    assert result["mean"] < 0.5
    after = _state(stand_in)
    assert all(torch.equal(before[k], after[k]) for k in before)      # the trained model is untouched


def test_guided_backprop_barely_notices_randomisation(stand_in, both):
    guided = guided_model(stand_in)
    assert not any(isinstance(m, torch.nn.ReLU6) for m in guided.modules())
    assert any(isinstance(m, torch.nn.ReLU6) for m in stand_in.modules())       # the original keeps its ReLU6
    correlations = []
    for seed in range(3):
        *_, (_, randomised) = randomised_models(stand_in, seed, 3)
        guided_random = guided_model(randomised)
        for class_id in (245, 281):
            correlations.append(spearman(guided_backprop(stand_in, class_id, both[0], guided),
                                         guided_backprop(randomised, class_id, both[0], guided_random)))
    assert np.mean(correlations) > 0.8


def test_the_cascade_replaces_stages_from_the_top(stand_in):
    stages = list(randomised_models(stand_in, seed=0, stages=3))
    labels = [label for label, _ in stages]
    assert labels == ["classifier", "classifier+conv_head", "classifier+conv_head+blocks[6]"]
    final = stages[-1][1]
    assert not torch.equal(final.classifier.weight, stand_in.classifier.weight)
    assert not torch.equal(final.blocks[6][0].conv_pw.weight, stand_in.blocks[6][0].conv_pw.weight)
    assert torch.equal(final.blocks[5][0].conv_pw.weight, stand_in.blocks[5][0].conv_pw.weight)


def test_pixel_maps_shapes_and_the_edge_detector(stand_in, both):
    x, rgb = both
    for heatmap in (saliency(stand_in, 245, x), guided_backprop(stand_in, 245, x), edge_map(rgb)):
        assert heatmap.shape == (224, 224) and heatmap.dtype == np.float32
        assert heatmap.min() == 0 and heatmap.max() == pytest.approx(1)
    flat = np.zeros((8, 8, 3), np.float32)
    flat[:, 4:] = 1.0
    edges = edge_map(flat)
    assert edges[:, 3:5].min() > 0.5 and edges[:, :2].max() == 0            # only the step is an edge


def test_spearman():
    a = np.arange(16.0).reshape(4, 4)
    assert spearman(a, a) == pytest.approx(1) and spearman(a, -a) == pytest.approx(-1)
    assert np.isnan(spearman(a, np.zeros_like(a)))


def test_gradcam_is_more_faithful_than_a_random_map(stand_in, both):
    x, _ = both
    heatmap = gradcam(stand_in, default_target_layers(stand_in), 243, x)
    random_map = np.random.default_rng(0).random(heatmap.shape).astype(np.float32)
    deletion = deletion_curve(stand_in, x, 243, heatmap)
    assert deletion.shape == (17,) and deletion[0] == pytest.approx(0.3835, abs=0.01)
    assert area_under(deletion) < area_under(deletion_curve(stand_in, x, 243, random_map))
    assert area_under(insertion_curve(stand_in, x, 243, heatmap)) > \
        area_under(insertion_curve(stand_in, x, 243, random_map))
    assert area_under(np.ones(5)) == pytest.approx(1) and area_under(np.array([0.0, 1.0])) == pytest.approx(0.5)


def test_explain_images_in_one_batch(stand_in):
    images = [load_image(fetch(name)) for name in ("both.png", "dog_cat.jfif", "horses.jpg")]
    results = explain_images(stand_in, default_target_layers(stand_in), images)
    assert [r["rgb"].shape for r in results] == [(224, 224, 3)] * 3
    assert results[0]["class_id"] == 243 and results[1]["class_id"] == 207           # bull mastiff, golden retriever
    assert all(r["heatmap"].shape == (224, 224) for r in results)
    alone = gradcam(stand_in, default_target_layers(stand_in), None, images[0][0])
    assert np.abs(results[0]["heatmap"] - alone).max() < 1e-4                         # both.png is square already
