"""GradCAM on other architectures: the automatic target layer, the automatic reshape of tokens and
channels-last outputs, and agreement with pytorch-grad-cam (given its documented reshape_transform).

Random weights (nothing is downloaded). CNNs get a 128 px image (any size works for them);
vision transformers need their own 224 px. Each model is built once per module.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import default_target_layers, explore, fetch, gradcam, layer_choices, load_image
from helpers.architectures import infer_layout, to_feature_map
from helpers.cam import forward_with_activations
from helpers.images import preprocessing
from helpers.models import explain_target_layer

# name -> (builder, the layer pytorch-grad-cam's docs would look at, its reshape_transform)
TORCHVISION = ["resnet18", "vgg11_bn", "densenet121", "mobilenet_v3_large", "efficientnet_b0",
               "convnext_tiny", "regnet_y_400mf", "vit_b_16", "swin_t"]
ALL = TORCHVISION + ["timm:vit_tiny_patch16_224"]
#: The default layer's name for each model, as default_target_layers should pick it.
EXPECTED_LAYER = {
    "resnet18": "layer4", "vgg11_bn": "features", "densenet121": "features", "mobilenet_v3_large": "features",
    "efficientnet_b0": "features", "convnext_tiny": "features", "regnet_y_400mf": "trunk_output",
    "vit_b_16": "encoder.layers.encoder_layer_11.ln_1", "swin_t": "norm",
    "timm:vit_tiny_patch16_224": "blocks[11].norm1",
}
_MODELS: dict = {}


def model_for(name: str) -> torch.nn.Module:
    if name not in _MODELS:
        torch.manual_seed(0)
        if name.startswith("timm:"):
            import timm

            _MODELS[name] = calibrated(timm.create_model(name[5:], pretrained=False))
        else:
            import torchvision.models as tvm

            _MODELS[name] = calibrated(getattr(tvm, name)(weights=None))
    return _MODELS[name]


def calibrated(model: torch.nn.Module) -> torch.nn.Module:
    """Random weights, with BatchNorm statistics measured on a batch of noise images, and no zero head.

    With BatchNorm's initial statistics, the activations of some random networks vanish
    (EfficientNet-B0's last map is about 1e-14): every map is noise. Measured statistics keep
    the activations at a normal scale, as in a trained network.
    """
    torch.manual_seed(0)
    for module in model.modules():                 # torchvision's ViT starts its head at zero: no gradient
        if isinstance(module, torch.nn.Linear) and not module.weight.any():
            torch.nn.init.normal_(module.weight, std=0.02)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if norms:
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None                   # a plain average over the batches seen
        model.train()
        with torch.no_grad():
            model(torch.randn(8, 3, 96, 96, generator=torch.Generator().manual_seed(1)))
    return model.eval()


def image_for(model: torch.nn.Module):
    fixed = preprocessing(model).fixed
    return load_image(fetch("dog_cat.jfif"), model=model) if fixed else load_image(fetch("dog_cat.jfif"), 128)


def vit_reshape(tensor, height=14, width=14):
    """pytorch-grad-cam's documented reshape_transform for ViT (tutorials/vision_transformers.md)."""
    result = tensor[:, 1:, :].reshape(tensor.size(0), height, width, tensor.size(2))
    return result.transpose(2, 3).transpose(1, 2)


def swin_reshape(tensor):
    """torchvision's Swin gives [N, h, w, C]: channels to the front, as pytorch-grad-cam's Swin example does."""
    return tensor.permute(0, 3, 1, 2)


def their_reshape(name: str):
    return {"vit_b_16": vit_reshape, "timm:vit_tiny_patch16_224": vit_reshape, "swin_t": swin_reshape}.get(name)


def their_gradcam(model, layer, x, class_id, reshape):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with GradCAM(model=model, target_layers=[layer], reshape_transform=reshape) as cam:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(class_id)])[0]


def layer_named(model, name):
    return layer_choices(model)[name]


def compared_layer(model, name, default):
    """Where to compare with pytorch-grad-cam: the default layer, except for DenseNet.

    torchvision's DenseNet applies an in-place ReLU to the output of ``features``; the
    activations pytorch-grad-cam keeps see that ReLU, ours (by design) do not. So compare at
    ``features.denseblock4``, whose output nothing changes in place.
    """
    return model.features.denseblock4 if name == "densenet121" else default


@pytest.mark.parametrize("name", ALL)
def test_the_automatic_layer_and_reshape_agree_with_pytorch_grad_cam(name):
    model = model_for(name)
    layer = default_target_layers(model)[0]
    assert layer is layer_named(model, EXPECTED_LAYER[name])
    layer = compared_layer(model, name, layer)
    x, _ = image_for(model)
    with torch.no_grad():
        top = torch.topk(model(x)[0], 5).indices.tolist()
    compared = 0
    for class_id in top:
        theirs = their_gradcam(model, layer, x, class_id, their_reshape(name))
        if theirs.max() < 0.5:                # random weights: a map that is all zero says nothing
            continue
        ours = gradcam(model, [layer], class_id, x)
        assert ours.shape == theirs.shape == tuple(x.shape[-2:])
        assert np.abs(ours - theirs).max() < 1e-2, f"{name}, class {class_id}"
        compared += 1
        break
    assert compared >= 1, f"{name}: pytorch-grad-cam's map was blank for all top-5 classes"


@pytest.mark.parametrize("name", ALL)
def test_explore_builds_and_redraws(name):
    model = model_for(name)
    x, rgb = image_for(model)
    widget = explore(model, default_target_layers(model), x, rgb)
    explorer = widget.explorer
    assert list(explorer.state.layers)[0] == EXPECTED_LAYER[name]
    assert "⚠" not in explorer.message.value
    before = explorer.heatmap.value
    others = [v for _, v in explorer.class_choice.options if v != explorer.class_choice.value]
    changed = False
    for class_id in others[:4]:                      # random weights: some maps are blank, try a few
        explorer.class_choice.value = class_id
        assert "⚠" not in explorer.message.value, explorer.message.value
        changed |= explorer.heatmap.value != before
    assert changed, f"{name}: the heatmap never changed with the class"


def test_vit_maps_at_the_last_blocks_output_are_blank_but_not_at_its_norm1():
    """Why the ViT default is blocks[-1].norm1: after the last block only the class token reaches the score."""
    model = model_for("timm:vit_tiny_patch16_224")
    x, _ = image_for(model)
    logits, (at_output,) = forward_with_activations(model, [model.blocks[-1]], x, detach=True)
    gradients = torch.autograd.grad(logits[0, 3], at_output)[0]
    assert at_output.shape == (1, 192, 14, 14)
    assert float(gradients.abs().max()) == 0.0                  # no patch token reaches the score
    logits, (at_norm1,) = forward_with_activations(model, [model.blocks[-1].norm1], x, detach=True)
    assert float(torch.autograd.grad(logits[0, 3], at_norm1)[0].abs().max()) > 0
    assert "class token" in explain_target_layer(model) and "blocks[11].norm1" in explain_target_layer(model)


def test_an_explicit_reshape_overrides_and_a_shape_that_cannot_be_read_says_what_to_pass():
    model = model_for("timm:vit_tiny_patch16_224")
    x, _ = image_for(model)
    layer = model.blocks[-1].norm1
    automatic = gradcam(model, [layer], 3, x)
    explicit = gradcam(model, [layer], 3, x, reshape=vit_reshape)
    assert np.abs(automatic - explicit).max() < 1e-6
    # a wrong grid given by hand gives a different map (the override is really used)
    flipped = gradcam(model, [layer], 3, x, reshape=lambda t: vit_reshape(t).transpose(2, 3))
    assert np.abs(flipped - automatic).max() > 0.1
    with pytest.raises(ValueError, match=r"head gives \[1, 1000\] for a 224x224 image.*pass reshape="):
        gradcam(model, [model.head], 3, x)


def test_the_reshape_leaves_the_model_and_its_scores_as_they_were():
    model = model_for("swin_t")
    x, _ = image_for(model)
    model.train()
    with torch.no_grad():
        expected = model.eval()(x)
    model.train()
    logits, (fmap,) = forward_with_activations(model, [model.norm], x)
    assert model.training and all(m.training for m in model.modules())
    assert fmap.shape == (1, 768, 4, 7)            # 128x205 px, one position per 32 px (padded)
    assert torch.allclose(logits, expected, atol=1e-5)
    assert not model.norm._forward_hooks
    model.eval()


def test_layouts_are_read_from_the_shape_and_the_image_size():
    assert infer_layout((1, 512, 7, 7), (224, 224)).kind == "NCHW"
    assert infer_layout((1, 7, 7, 768), (224, 224)).kind == "NHWC"
    assert infer_layout((1, 7, 10, 768), (224, 320)).grid == (7, 10)
    layout = infer_layout((1, 198, 192), (224, 224))              # DeiT distilled: class + distillation token
    assert (layout.kind, layout.grid, layout.prefix) == ("tokens", (14, 14), 2)
    assert infer_layout((1, 201, 192), (224, 224), prefix_tokens=5).grid == (14, 14)    # 4 registers
    assert infer_layout((1, 196, 192), (224, 224)).prefix == 0
    assert infer_layout((1, 1000), (224, 224)) is None
    tokens = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(1, 10, 3)       # class token + 3x3
    fmap = to_feature_map(tokens, infer_layout(tokens.shape, (48, 48)))
    assert fmap.shape == (1, 3, 3, 3) and torch.equal(fmap[0, :, 0, 0], tokens[0, 1])


def test_preprocessing_follows_the_model(both):
    vit = model_for("timm:vit_tiny_patch16_224")
    assert preprocessing(vit).mean == (0.5, 0.5, 0.5) and preprocessing(vit).fixed
    x, rgb = load_image(fetch("dog_cat.jfif"), model=vit)
    assert x.shape == (1, 3, 224, 224) and rgb.shape == (224, 224, 3)
    assert torch.allclose(x[0], torch.from_numpy((rgb.transpose(2, 0, 1) - 0.5) / 0.5), atol=1e-6)
    resnet = model_for("resnet18")
    plain, _ = load_image(fetch("both.png"))
    assert torch.equal(load_image(fetch("both.png"), model=resnet)[0], plain)
    assert torch.equal(plain, both[0])
    assert load_image(fetch("dog_cat.jfif"), model=model_for("vit_b_16"))[0].shape == (1, 3, 224, 224)


@pytest.mark.parametrize("name", ["levit_128s", "mixer_s16_224"])
def test_a_timm_model_of_fixed_input_size_gets_its_dry_run_at_that_size(name):
    import timm

    from helpers import default_target_layers
    from helpers.architectures import dry_run_size, needs_fixed_size

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False).eval()
    assert needs_fixed_size(model) and dry_run_size(model) == (224, 224)
    layers = default_target_layers(model)                      # used to fail: a dry run at 128 px
    assert layers and all(any(layer is module for module in model.modules()) for layer in layers)
