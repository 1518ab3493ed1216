"""Issue 24: Hugging Face models, built from small configs with random weights (nothing downloaded):
every helper leaves them exactly as they were (Swin shrank its windows in place), their processor's
mean and std, their one size, id2label, multi-label sigmoid, and embeddings."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")

from helpers import default_target_layers, explore, fetch, gradcam, layer_choices, load_image, viz_gradcam  # noqa: E402
from helpers.models import explain_target_layer  # noqa: E402
from helpers.widgets import percent  # noqa: E402
from test_targets import SimilarityToConceptTarget, run_advice  # noqa: E402

TINY = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)


def tiny_swin(**extra):
    torch.manual_seed(0)
    config = transformers.SwinConfig(image_size=64, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[1, 2],
                                     window_size=4, num_labels=5, **extra)
    return transformers.SwinForImageClassification(config).eval()


def tiny_vit(**extra):
    torch.manual_seed(0)
    config = transformers.ViTConfig(image_size=32, patch_size=8, num_labels=3, **TINY, **extra)
    return transformers.ViTForImageClassification(config).eval()


def outputs_at_its_own_size(model, size):
    with torch.no_grad():
        return model(torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))).logits


def test_a_swin_that_the_old_dry_run_broke_keeps_its_windows():
    """Swin-T's layout (224 px, windows of 7), tiny widths: a dry run at 128 px made its last stage 4x4,
    smaller than its windows, so it shrank them in place, and the model failed at 224 px for good."""
    torch.manual_seed(0)
    model = transformers.SwinForImageClassification(transformers.SwinConfig(
        image_size=224, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=7,
        num_labels=5)).eval()
    before = outputs_at_its_own_size(model, 224)
    assert "pools the grid away" in explain_target_layer(model)
    assert gradcam(model, default_target_layers(model), 1, torch.randn(1, 3, 224, 224)).shape == (224, 224)
    with pytest.raises(ValueError):
        gradcam(model, default_target_layers(model), 1, torch.randn(1, 3, 128, 128))     # its windows do not fit
    assert torch.equal(outputs_at_its_own_size(model, 224), before)
    assert {layer.window_size for layer in model.modules() if hasattr(layer, "shift_size")} == {7}


def test_swin_is_left_exactly_as_it_was_by_every_path(mirror, capsys):
    """The dry run tried 128 px first, and Swin shrank its window_size in place; now its own size comes
    first, and every run is a copy. Each path below, then the model's outputs at 64 px are unchanged."""
    model = tiny_swin()
    before = outputs_at_its_own_size(model, 64)
    windows = [layer.window_size for layer in model.modules() if hasattr(layer, "shift_size")]
    layers = default_target_layers(model)
    assert "pools the grid away" in explain_target_layer(model) and list(layer_choices(model))
    x, rgb = load_image(mirror / "both.png", model=model)
    assert x.shape == (1, 3, 64, 64)
    assert gradcam(model, layers, 2, x).shape == (64, 64)
    assert gradcam(model, layers, None, torch.randn(1, 3, 32, 32)).shape == (32, 32)       # another size it takes
    with pytest.raises(ValueError, match=r"runs at 64x64 \(its own size\) but failed at 16x16") as error:
        gradcam(model, layers, 2, torch.randn(1, 3, 16, 16))       # too small for its windows: named, not kept
    assert "load_image(..., model=model)" in str(error.value)
    viz_gradcam(model, layers, None, x, rgb, show=False)
    widget = explore(model, layers, x, rgb)
    assert widget.explorer.state.class_id == int(outputs_for(model, x).argmax())
    with pytest.raises(ValueError, match="failed at every size tried \\(16x16\\)"):
        default_target_layers(model, image_size=16)               # a dry run at a size it cannot take
    assert [layer.window_size for layer in model.modules() if hasattr(layer, "shift_size")] == windows
    assert torch.equal(outputs_at_its_own_size(model, 64), before)
    assert all(not m._forward_hooks for m in model.modules()) and not model.training


def outputs_for(model, x):
    with torch.no_grad():
        return model(x).logits[0]


def test_a_vit_gets_its_processors_mean_its_one_size_and_a_message_whose_fix_runs(mirror, capsys):
    model = tiny_vit()
    before = outputs_at_its_own_size(model, 32)
    x, rgb = load_image(mirror / "both.png", model=model)
    said = capsys.readouterr().out
    assert "mean (0.5, 0.5, 0.5) and std (0.5, 0.5, 0.5) from ViTImageProcessor" in said
    assert x.shape == (1, 3, 32, 32)
    assert np.abs(x[0].permute(1, 2, 0).numpy() - (rgb - 0.5) / 0.5).max() < 1e-5        # not ImageNet's
    layers = default_target_layers(model)
    assert gradcam(model, layers, 1, x).shape == (32, 32)
    wrong = load_image(mirror / "both.png", size=48)[0]                      # transformers' own ValueError
    with pytest.raises(ValueError, match=r"takes 32x32 images only, but input_tensor is 48x48") as error:
        gradcam(model, layers, 1, wrong)
    fix = re.search(r"(load_image\(\.\.\., model=model\))", str(error.value)).group(1)
    fixed = eval(fix.replace("...", "path"), {"load_image": load_image, "path": mirror / "both.png", "model": model})
    assert fixed[0].shape == (1, 3, 32, 32) and gradcam(model, layers, 1, fixed[0]).max() > 0.99
    assert torch.equal(outputs_at_its_own_size(model, 32), before)


def test_id2label_and_a_multi_label_models_sigmoid(mirror, capsys):
    labels = {0: "cat", 1: "dog", 2: "car"}
    model = tiny_vit(id2label=labels, label2id={v: k for k, v in labels.items()},
                     problem_type="multi_label_classification")
    x, rgb = load_image(mirror / "both.png", model=model)
    capsys.readouterr()
    logits = outputs_for(model, x)
    viz_gradcam(model, default_target_layers(model), 1, x, rgb, show=False)
    out = capsys.readouterr().out
    p_dog, top = torch.sigmoid(logits[1]).item(), int(logits.argmax())
    assert f"Target class: 1 · dog (p = {p_dog:.3g}); the model's top class is {top} · {labels[top]} " \
           f"(p = {torch.sigmoid(logits[top]).item():.3g})" in out
    assert "assumed" not in out                                   # the config says multi-label: no guess
    explorer = explore(model, default_target_layers(model), x, rgb, class_id=1).explorer
    assert explorer.state.label(1) == "1 · dog"
    assert f"probability {percent(p_dog)}" in explorer.status.value and "dog" in explorer.status.value


def test_an_embedding_model_is_told_similarity_and_its_code_runs(mirror):
    torch.manual_seed(0)
    model = transformers.ViTModel(transformers.ViTConfig(image_size=32, patch_size=8, **TINY)).eval()
    x, _ = load_image(mirror / "both.png", model=model)
    reference_tensor = x.flip(-1)
    layers = default_target_layers(model)
    with pytest.raises(ValueError, match=r"an embedding \[1, 16\], not class scores.*SimilarityToConceptTarget") \
            as error:
        gradcam(model, layers, None, x)
    from helpers.targets import image_output

    advice = run_advice(str(error.value), {"model": model, "reference_tensor": reference_tensor,
                                           "image_output": image_output})
    ours = gradcam(model, layers, advice["target"], x)
    assert ours.shape == (32, 32) and ours.max() > 0.99
    tutorial = gradcam(model, layers, SimilarityToConceptTarget(advice["concept"]), x)
    assert np.abs(ours - tutorial).max() < 1e-6


def test_tokens_without_a_pooler_are_told_the_class_tokens_similarity_and_its_code_runs(mirror):
    torch.manual_seed(0)
    model = transformers.ViTModel(transformers.ViTConfig(image_size=32, patch_size=8, **TINY),
                                  add_pooling_layer=False).eval()
    x, _ = load_image(mirror / "both.png", model=model, mean=[0.5] * 3, std=[0.5] * 3)    # the note's advice
    layers = default_target_layers(model)
    with pytest.raises(ValueError, match=r"tokens \[1, 17, 16\] \(last_hidden_state\)") as error:
        gradcam(model, layers, 0, x)
    from helpers.targets import image_output

    advice = run_advice(str(error.value), {"model": model, "reference_tensor": x.flip(-1),
                                           "image_output": image_output})
    assert advice["concept"].shape == (16,)
    heatmap = gradcam(model, layers, advice["target"], x)
    assert heatmap.shape == (32, 32) and np.isfinite(heatmap).all()
