import numpy as np
import pytest

from helpers import default_target_layers, gradcam, overlay, viz_gradcam


def test_overlay_blends_in_true_rgb_colours():
    rgb = np.full((4, 4, 3), 0.5, np.float32)
    cam = np.zeros((4, 4), np.float32)
    cam[0, 0] = 1.0
    assert np.array_equal(overlay(rgb, cam, alpha=0.0), np.full((4, 4, 3), 128, np.uint8))
    hot = overlay(rgb, cam, alpha=1.0, cmap="jet")
    assert hot.dtype == np.uint8 and hot.shape == (4, 4, 3)
    assert hot[0, 0, 0] > 100 and hot[0, 0, 2] < 10        # jet's top is dark red, not blue (no BGR swap)
    assert hot[3, 3, 2] > 100 and hot[3, 3, 0] < 10        # jet's bottom is dark blue
    grey = overlay(rgb, cam, alpha=1.0, cmap="gray")
    assert grey[0, 0].tolist() == [255, 255, 255] and grey[1, 1].tolist() == [0, 0, 0]


def test_overlay_refuses_mismatched_or_unscaled_input():
    with pytest.raises(ValueError, match="must match"):
        overlay(np.zeros((4, 4, 3), np.float32), np.zeros((5, 5), np.float32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        overlay(np.full((4, 4, 3), 255, np.float32), np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="colour map"):
        overlay(np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), np.float32), cmap="nope")


def test_viz_gradcam_prints_names_and_returns_the_overlay(stand_in, both, capsys):
    x, rgb = both
    picture = viz_gradcam(stand_in, default_target_layers(stand_in), 245, x, rgb)
    out = capsys.readouterr().out
    assert "Target class: 245 · French bulldog (p = 0.00" in out
    assert "top class is 243 · bull mastiff (p = 0.38" in out
    assert picture.dtype == np.uint8 and picture.shape == (224, 224, 3)
    heatmap = gradcam(stand_in, default_target_layers(stand_in), 245, x)
    assert np.array_equal(picture, overlay(rgb, heatmap))
    viz_gradcam(stand_in, default_target_layers(stand_in), None, x, rgb, show=False)
    assert "Predicted class: 243 · bull mastiff (p = 0.38" in capsys.readouterr().out


def test_the_hottest_pixel_is_red_in_the_shown_picture(stand_in, both):
    x, rgb = both
    picture = viz_gradcam(stand_in, default_target_layers(stand_in), 281, x, rgb, show=False)
    heatmap = gradcam(stand_in, default_target_layers(stand_in), 281, x)
    row, col = np.unravel_index(int(heatmap.argmax()), heatmap.shape)
    assert int(picture[row, col, 0]) > int(picture[row, col, 2]) + 40
