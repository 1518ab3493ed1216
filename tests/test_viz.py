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
    viz_gradcam(stand_in, default_target_layers(stand_in), 243, x, rgb, show=False)      # the top class, asked for
    said = capsys.readouterr().out
    assert said.startswith("Target class: 243 · bull mastiff (p = 0.38") and said.count("bull mastiff") == 1
    assert "the model's top class" in said


def test_the_strongest_pixel_is_the_brightest_in_the_shown_picture(stand_in, both):
    """The lesson reads maps by brightness: 'bright = strong evidence'."""
    x, rgb = both
    picture = viz_gradcam(stand_in, default_target_layers(stand_in), 281, x, rgb, show=False, alpha=1.0)
    heatmap = gradcam(stand_in, default_target_layers(stand_in), 281, x)
    strongest = np.unravel_index(int(heatmap.argmax()), heatmap.shape)
    weakest = np.unravel_index(int(heatmap.argmin()), heatmap.shape)
    assert picture[strongest].astype(int).sum() > picture[weakest].astype(int).sum() + 400
    assert int(picture[strongest][0]) > int(picture[strongest][2]) + 40     # yellow, not blue: no BGR swap


def test_the_default_colour_map_is_inferno_in_overlay_and_viz_gradcam(stand_in, both):
    from helpers.viz import DEFAULT_CMAP

    assert DEFAULT_CMAP == "inferno"
    rgb = np.full((2, 2, 3), 0.5, np.float32)
    cam = np.array([[0.0, 0.0], [1.0, 1.0]], np.float32)
    pure = overlay(rgb, cam, alpha=1.0)
    assert pure[0, 0].tolist() == [0, 0, 4]            # inferno's bottom: almost black
    assert pure[1, 1].tolist() == [252, 255, 164]      # inferno's top: pale yellow
    assert overlay(rgb, cam, alpha=1.0, cmap="jet")[1, 1].tolist() == [128, 0, 0]   # jet stays selectable
    x, rgb = both
    shown = viz_gradcam(stand_in, default_target_layers(stand_in), 281, x, rgb, show=False)
    heatmap = gradcam(stand_in, default_target_layers(stand_in), 281, x)
    assert np.array_equal(shown, overlay(rgb, heatmap, cmap="inferno"))
    assert not np.array_equal(shown, overlay(rgb, heatmap, cmap="jet"))


def _net_with_only_negative_evidence_for_class_0():
    """A tiny CNN whose class 0 has negative weight on every channel: no position can be evidence for it."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 2))
    with torch.no_grad():
        net[4].weight.copy_(torch.tensor([[-1.0] * 4, [1.0] * 4]))
        net[4].bias.zero_()
    return net.eval()


def test_a_map_with_no_positive_evidence_is_blank_and_shown_black():
    """Episode 4: 'when no position has positive evidence for a class, the map is blank (all black)'.

    This is the mechanism, whatever the model: ReLU leaves nothing to stretch to [0, 1].
    """
    import torch

    net = _net_with_only_negative_evidence_for_class_0()
    x = torch.rand(1, 3, 8, 8)
    blank = gradcam(net, [net[1]], 0, x)
    assert blank.shape == (8, 8) and float(blank.max()) == 0.0
    assert float(gradcam(net, [net[1]], 1, x).max()) == pytest.approx(1.0, abs=1e-5)   # the other class is stretched
    black = overlay(np.full((8, 8, 3), 0.5, np.float32), blank, alpha=1.0)
    assert black.max() <= 4
    from helpers.claims import where
    assert "blank" in where(blank, "both.png")


def test_every_helper_that_takes_a_colour_map_defaults_to_inferno():
    """Issue 9: the colour-blind-safe map is the default everywhere; jet only when asked for."""
    import importlib
    import inspect
    import pkgutil

    import helpers
    from helpers.viz import DEFAULT_CMAP

    defaults = {}
    for info in pkgutil.iter_modules(helpers.__path__):
        module = importlib.import_module(f"helpers.{info.name}")
        for name, thing in vars(module).items():
            targets = [thing] + ([thing.__init__] if inspect.isclass(thing) else [])
            for target in targets:
                if callable(target) and getattr(target, "__module__", "") == module.__name__:
                    try:
                        parameter = inspect.signature(target).parameters.get("cmap")
                    except (TypeError, ValueError):
                        continue
                    if parameter is not None and parameter.default is not inspect.Parameter.empty:
                        defaults[f"{module.__name__}.{name}"] = parameter.default
    assert "helpers.viz.overlay" in defaults and "helpers.viz.viz_gradcam" in defaults
    assert {name: d for name, d in defaults.items() if d != DEFAULT_CMAP} == {}


def test_show_cam_on_image_swaps_only_the_heatmaps_colours_without_use_rgb():
    """Issue 17: the precise BGR wording. pytorch-grad-cam colours the heatmap in BGR by default; the photo
    stays as passed. So an RGB photo looks right while the heatmap's red and blue are swapped."""
    import cv2
    from pytorch_grad_cam.utils.image import show_cam_on_image

    rng = np.random.default_rng(0)
    photo = rng.random((32, 48, 3)).astype(np.float32)
    mask = rng.random((32, 48)).astype(np.float32)
    heat_bgr = cv2.applyColorMap(np.uint8(255 * mask), cv2.COLORMAP_JET).astype(np.float32) / 255
    default = show_cam_on_image(photo, mask).astype(float)
    expected = 0.5 * heat_bgr + 0.5 * photo                     # BGR heatmap, RGB photo
    assert np.abs(default - np.uint8(255 * expected / expected.max())).max() <= 1
    rgb = show_cam_on_image(photo, mask, use_rgb=True).astype(float)
    expected_rgb = 0.5 * heat_bgr[..., ::-1] + 0.5 * photo
    assert np.abs(rgb - np.uint8(255 * expected_rgb / expected_rgb.max())).max() <= 1
    # the whole picture reversed is NOT what the default gives: the photo's channels were not swapped
    assert np.abs(default - rgb[..., ::-1]).max() > 20
