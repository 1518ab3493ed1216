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


def calibrated(model: torch.nn.Module, size: int = 96) -> torch.nn.Module:
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
            model(torch.randn(8, 3, size, size, generator=torch.Generator().manual_seed(1)))
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


# === The models researchers bring (issue 18) ==================================================
# Tiny models with random weights, tiny images: each test runs in about a second. Every new path
# is checked against pytorch-grad-cam on the same layer (with the wrapper or reshape_transform
# pytorch-grad-cam needs), and leaves the model as it was: modes, weights, BatchNorm
# statistics and gradients unchanged, no hook left behind.

import collections
import contextlib
import warnings

from torch import nn


#: How close our maps and pytorch-grad-cam's must be (float32 rounding; maps are in [0, 1]).
AGREE = 1e-4


def tiny_cnn(channels: int = 3, classes: int = 10) -> nn.Sequential:
    """conv (stride 1) - BN - ReLU - conv (stride 2) - BN - ReLU - pool - linear; index 3 is the last conv."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, classes))


def noise(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@contextlib.contextmanager
def left_as_it_was(model: nn.Module):
    """The model goes in in train mode; after the block its modes, weights, BatchNorm statistics and
    gradients are what they were, and no module holds a hook."""
    model.train()
    modes = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    yield model
    assert [m.training for m in model.modules()] == modes
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules())
    model.eval()


def agreement(model, layer, x, ours_model=None, reshape=None, their_model=None, classes=range(10)):
    """Max |ours - pytorch-grad-cam| at ``layer`` for the first class whose map is not blank.

    Ours runs on ``ours_model`` (default ``model``), pytorch-grad-cam on ``their_model`` (default
    ``model``): the plain model, where pytorch-grad-cam needs one.
    """
    ours_model = model if ours_model is None else ours_model
    their_model = model if their_model is None else their_model
    for class_id in classes:
        modes = [(m, m.training) for m in their_model.modules()]
        theirs = their_gradcam(their_model, layer, x, class_id, reshape)
        for module, training in modes:                # pytorch-grad-cam leaves the model in eval mode,
            module.training = training
        for parameter in their_model.parameters():
            parameter.grad = None                     # and its backward() fills the weights' .grad
        if theirs.max() < 0.5:
            continue
        ours = gradcam(ours_model, [layer], class_id, x)
        assert ours.shape == theirs.shape == tuple(x.shape[-2:])
        return float(np.abs(ours - theirs).max())
    pytest.fail("pytorch-grad-cam's map was blank for every class")


def with_heads_drawn(model: nn.Module) -> nn.Module:
    """timm zero-initialises some classifier heads (no gradient at all) and some residual branches'
    BatchNorm (LeViT: every branch silent): draw them, as training would."""
    torch.manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.Linear) and not module.weight.any():
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.weight is not None and not module.weight.any():
            nn.init.ones_(module.weight)
    return model.eval()


def tiny_timm(name: str, **options) -> nn.Module:
    import timm

    torch.manual_seed(0)
    return with_heads_drawn(timm.create_model(name, pretrained=False, num_classes=10, **options))


def tokens_reshape(height, width, prefix=1):
    """pytorch-grad-cam's reshape_transform for tokens: drop the prefix tokens, channels to the front."""
    def reshape(tensor):
        return tensor[:, prefix:, :].reshape(tensor.size(0), height, width, tensor.size(2)).permute(0, 3, 1, 2)
    return reshape


# --- 1. outputs that are not a tensor ------------------------------------------------------------

class ModelOutput(collections.OrderedDict):
    """Like Hugging Face's ModelOutput: a dict whose items are attributes too."""

    __getattr__ = collections.OrderedDict.__getitem__


Pair = collections.namedtuple("Pair", "logits features")


class Returns(nn.Module):
    """``tiny_cnn`` whose forward returns its scores inside another object."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.net, self.kind = tiny_cnn(), kind

    def forward(self, x):
        features = self.net[:6](x)
        scores = self.net[6:](features)
        return {"hf": lambda: ModelOutput(logits=scores, hidden_states=(features,)),
                "tuple": lambda: (features, scores), "list": lambda: [scores],
                "dict": lambda: {"logits": scores, "features": features},
                "namedtuple": lambda: Pair(scores, features), "two scores": lambda: (scores, scores * 2),
                "no scores": lambda: [features, features.mean((2, 3))[:, :, None, None]]}[self.kind]()


@pytest.mark.parametrize("kind", ["hf", "tuple", "list", "dict", "namedtuple"])
def test_scores_inside_an_object_tuple_or_dict_are_found(kind):
    model, x = Returns(kind).eval(), noise(1, 3, 16, 16)
    plain = model.net
    with left_as_it_was(model):
        ours = gradcam(model, [plain[3]], 2, x)
        assert default_target_layers(model) == [model.net[5]]
    assert np.array_equal(ours, gradcam(plain, [plain[3]], 2, x))
    assert agreement(model, plain[3], x, their_model=plain) < AGREE      # pytorch-grad-cam needs the plain net


def test_an_output_without_one_clear_score_tensor_says_what_it_got_and_how_to_wrap_it():
    from helpers.models import ClassScores

    model, x = Returns("two scores").eval(), noise(1, 3, 16, 16)
    with left_as_it_was(model), pytest.raises(ValueError, match=r"returned a tuple of 2 tensors \(\[1, 10\], \[1, 10\]\)"
                                                                r".*ClassScores\(model, 0\)"):
        gradcam(model, [model.net[3]], 2, x)
    wrapped = ClassScores(model, 1)
    expected = gradcam(nn.Sequential(model.net, Scale(2.0)), [model.net[3]], 2, x)
    assert np.abs(gradcam(wrapped, [model.net[3]], 2, x) - expected).max() < 1e-6
    backbone = Returns("no scores").eval()
    with pytest.raises(ValueError, match=r"returned a list of 2 tensors \(\[1, 16, 8, 8\], \[1, 16, 1, 1\]\), "
                                         r"none of them class scores \[N, classes\].*backbone"):
        gradcam(backbone, [backbone.net[3]], 2, x)


class Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def test_a_timm_backbone_made_with_features_only_is_named():
    backbone = tiny_timm("mobilenetv3_small_050", features_only=True)
    with left_as_it_was(backbone), pytest.raises(ValueError, match=r"features_only=True.*without features_only"):
        gradcam(backbone, [backbone.blocks[-1]], 1, noise(1, 3, 32, 32))


# --- 2. not three channels -----------------------------------------------------------------------

@pytest.mark.parametrize("channels", [1, 4])
def test_one_and_four_channel_models_take_their_own_channels(channels):
    model, x = tiny_cnn(channels).eval(), noise(1, channels, 16, 16)
    with left_as_it_was(model):
        assert default_target_layers(model) == [model[5]]
        assert agreement(model, model[3], x) < AGREE
        with pytest.raises(ValueError, match=rf"takes {channels} channels? \(its first convolution\), but "
                                             rf"input_tensor has 3"):
            gradcam(model, [model[3]], 1, noise(1, 3, 16, 16))


def test_load_image_makes_a_grey_tensor_for_a_grey_model_and_names_what_it_cannot_make():
    grey = tiny_cnn(1)
    x, rgb = load_image(fetch("both.png"), model=grey)
    assert x.shape == (1, 1, 224, 224) and rgb.shape == (224, 224, 3)
    luminance = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    assert np.abs(x[0, 0].numpy() - (luminance - 0.449) / 0.226).max() < 0.02
    x, _ = load_image(fetch("both.png"), model=grey, mean=[0.5], std=[0.25])
    assert np.abs(x[0, 0].numpy() - (luminance - 0.5) / 0.25).max() < 0.02
    with pytest.raises(ValueError, match=r"takes 4 channels.*RGB \(3\) or grey \(1\).*\[1, 4, H, W\] yourself"):
        load_image(fetch("both.png"), model=tiny_cnn(4))


# --- 3. a fixed input size -----------------------------------------------------------------------

def fixed_size_cnn(size: int = 32, channels: int = 3) -> nn.Sequential:
    """A CNN of one's own that flattens its last map into a linear layer: only ``size`` px fits."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(8 * (size // 2) ** 2, 10)).eval()


class Attend(nn.Module):
    """Self-attention through nn.MultiheadAttention, in a class whose name says nothing about it."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(dim, 2, batch_first=True)

    def forward(self, x):
        return self.mha(x, x, x, need_weights=False)[0]


class Block(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.ln1, self.mix, self.ln2 = nn.LayerNorm(dim), Attend(dim), nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        x = x + self.mix(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class HandMadeViT(nn.Module):
    """A vision transformer written by hand: class token, learned position embedding (so one size only)."""

    def __init__(self, size: int = 32, patch: int = 8, dim: int = 32, depth: int = 2) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, 1 + (size // patch) ** 2, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim) for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, 10)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(len(x), -1, -1), x], dim=1) + self.pos
        return self.head(self.norm(self.blocks(x))[:, 0])


def test_a_cnn_for_32_px_gets_its_dry_run_and_its_images_at_32_px():
    model = fixed_size_cnn(32)
    with left_as_it_was(model):
        assert default_target_layers(model) == [model[4]]
        assert "(16x16 for its 32x32 input)" in explain_target_layer(model)
    x, rgb = load_image(fetch("dog_cat.jfif"), model=model)
    assert x.shape == (1, 3, 32, 32) and rgb.shape == (32, 32, 3)     # the whole image, at the only size that fits
    assert agreement(model, model[4], x) < AGREE


@pytest.mark.parametrize("kind", ["cnn", "vit"])
def test_an_image_of_the_wrong_size_for_a_one_size_model_names_both_sizes(kind):
    # A linear layer's "mat1 and mat2 shapes cannot be multiplied", timm's "Input height (224) doesn't
    # match model (64)" (an AssertionError) become one message that says how to make the right image.
    model = fixed_size_cnn(32) if kind == "cnn" else tiny_timm("vit_tiny_patch16_224", img_size=64, depth=2)
    size = 32 if kind == "cnn" else 64
    with left_as_it_was(model), pytest.raises(ValueError, match=rf"takes {size}x{size} images only, but input_tensor "
                                                                 rf"is 48x48: make it with load_image\(\.\.\., "
                                                                 rf"model=model\)"):
        gradcam(model, default_target_layers(model), 1, noise(1, 3, 48, 48))


def test_image_size_says_the_size_when_no_standard_size_fits():
    model = fixed_size_cnn(40)
    with pytest.raises(ValueError, match=r"failed at every size tried \(.*\).*image_size="):
        default_target_layers(model)
    assert default_target_layers(model, image_size=40) == [model[4]]
    assert list(layer_choices(model, image_size=(40, 40)))[0] == "[4]"     # model[4]


def test_maxvit_and_a_vit_with_a_learned_position_embedding_find_their_size():
    from torchvision.models import MaxVit

    torch.manual_seed(0)
    maxvit = MaxVit(input_size=(96, 96), stem_channels=8, partition_size=3, block_channels=[8, 16],
                    block_layers=[1, 1], head_dim=4, stochastic_depth_prob=0.0, num_classes=10).eval()
    with left_as_it_was(maxvit):
        layer = default_target_layers(maxvit)[0]
        assert layer is maxvit.blocks[1] and preprocessing(maxvit).size == (96, 96)
        assert agreement(maxvit, layer, noise(1, 3, 96, 96)) < AGREE
    vit = HandMadeViT()
    with left_as_it_was(vit):
        assert default_target_layers(vit) == [vit.blocks[1].ln1]


# --- 4. a wrong layer on a model not surveyed before -----------------------------------------

def test_a_layer_without_a_grid_is_refused_at_once_naming_the_right_layer():
    import time

    vit = tiny_timm("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, embed_dim=32, num_heads=2)
    x = noise(1, 3, 32, 32)
    with left_as_it_was(vit):
        started = time.perf_counter()
        with pytest.raises(ValueError, match=r"head gives \[1, 10\] for a 32x32 image.*such as blocks\[1\]\.norm1"):
            gradcam(vit, [vit.head], 1, x)
        assert time.perf_counter() - started < 3


# --- 5. transformers whose attention is not called *Attention* -------------------------------

TRANSFORMERS = {
    # name: (builder, the default layer, the grid at the dry-run size, prefix tokens)
    "cait": (lambda: tiny_timm("cait_xxs24_224", img_size=32, patch_size=8, depth=2, embed_dim=32, num_heads=2),
             "blocks_token_only[1].norm1", (4, 4), 1),
    "convit": (lambda: tiny_timm("convit_tiny", img_size=32, patch_size=8, depth=3, local_up_to_layer=2,
                                 embed_dim=32, num_heads=2), "blocks[2].norm1", (4, 4), 1),
    "twins": (lambda: tiny_timm("twins_svt_small", img_size=32, patch_size=4, embed_dims=(8, 16), num_heads=(1, 2),
                                depths=(1, 1), mlp_ratios=(2, 2), sr_ratios=(2, 1), wss=(2, 2)), "norm", (4, 4), 0),
    "levit": (lambda: calibrated(tiny_timm("levit_128s", img_size=128), 128), "stages", (2, 2), 0),
    "hand-made ViT": (HandMadeViT, "blocks[1].ln1", (4, 4), 1),
    "avg-pool ViT": (lambda: tiny_timm("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, embed_dim=32,
                                       num_heads=2, class_token=False, global_pool="avg"), "blocks", (4, 4), 0),
}


@pytest.mark.parametrize("name", list(TRANSFORMERS))
def test_transformers_get_their_last_token_layer_whatever_their_classes_are_called(name):
    build, expected, grid, prefix = TRANSFORMERS[name]
    model = build()
    with left_as_it_was(model):
        layer = default_target_layers(model)[0]
        assert layer is layer_named(model, expected)
        size = preprocessing(model).size if preprocessing(model).fixed else (32, 32)
        x = noise(1, 3, *size)
        assert agreement(model, layer, x, reshape=tokens_reshape(*grid, prefix)) < AGREE
    reason = explain_target_layer(model)
    assert reason.startswith(expected)
    assert ("class token" in reason) == (prefix == 1)              # avg-pool models pool their tokens instead


@pytest.mark.parametrize("name", ["cait", "convit"])
def test_attention_weights_and_position_layers_are_never_offered_as_maps(name):
    model = TRANSFORMERS[name][0]()
    offered = " ".join(layer_choices(model))
    assert "proj_l" not in offered and "proj_w" not in offered and "pos_proj" not in offered


def test_hieras_unrolled_tokens_are_not_offered_and_its_last_stage_is():
    model = tiny_timm("hiera_tiny_224", img_size=64, embed_dim=8, num_heads=1, stages=(1, 1, 2, 1))
    with left_as_it_was(model):
        choices = layer_choices(model)
    assert list(choices)[0] == "blocks[4]" and not {"blocks[0]", "blocks[1]", "blocks[2].norm1"} & set(choices)
    x = noise(1, 3, 64, 64)
    assert agreement(model, model.blocks[4], x, reshape=tokens_reshape(2, 2, 0)) < AGREE
    with pytest.warns(UserWarning, match=r"could not read blocks\[1\]'s positions in row order.*reshape="):
        gradcam(model, [model.blocks[1]], 1, x)


# --- 6. a 1x1 grid -----------------------------------------------------------------------------

def test_a_one_by_one_grid_gives_a_warning_that_names_a_finer_layer():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = calibrated(resnet18(weights=None, num_classes=10))
    x = noise(1, 3, 32, 32)
    with left_as_it_was(model), pytest.warns(UserWarning, match=r"layer4 gives a 1x1 grid for this 32x32 image"
                                                                 r".*blank.*such as layer3,"):
        blank = gradcam(model, [model.layer4], 1, x)
    assert blank.max() == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gradcam(model, [model.layer3], 1, x).max() > 0.99


# --- 7. a frozen backbone --------------------------------------------------------------------

class Frozen(nn.Module):
    """A frozen backbone the way people write it: under no_grad, or detached."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.backbone, self.how = tiny_cnn()[:6], how
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))

    def forward(self, x):
        if self.how == "no_grad":
            with torch.no_grad():
                features = self.backbone(x)
        else:
            features = self.backbone(x).detach()
        return self.head(features)


@pytest.mark.parametrize("how", ["no_grad", "detach"])
def test_a_frozen_backbone_is_named_as_the_cause(how):
    model = Frozen(how).eval()
    x = noise(1, 3, 16, 16)
    with left_as_it_was(model):
        for layers in ([model.backbone[3]], [model.backbone[3], model.backbone[0]]):
            with pytest.raises(ValueError, match=r"score does not depend on backbone\[3\].*torch\.no_grad\(\) or "
                                                 r"\.detach\(\)"):
                gradcam(model, layers, 1, x)
        if how == "no_grad":                # the frozen backbone's output is fine (pytorch-grad-cam: not frozen)
            unfrozen = nn.Sequential(model.backbone, model.head)
            assert agreement(model, model.backbone, x, their_model=unfrozen) < AGREE


# --- 8. the explorer names a model's own classes ------------------------------------------------

def test_the_explorer_names_the_models_own_classes():
    import html

    model, x = tiny_cnn(), noise(1, 3, 32, 32)
    rgb = np.zeros((32, 32, 3), np.float32)
    with left_as_it_was(model):
        explorer = explore(model, [model[3]], x, rgb).explorer
    labels = [label for label, _ in explorer.class_choice.options]
    assert len(labels) == 5 and all(label == f"{i} · class {i}" for label, i in explorer.class_choice.options)
    assert explorer.search.placeholder == "search all 10 classes" and len(explorer.search.options) == 10
    names = ["cat", "dog", "fox", "owl", "elk", "emu", "yak", "gnu", "ant", "bee"]
    explorer = explore(model, [model[3]], x, rgb, class_names=names).explorer
    assert all(label == f"{i} · {names[i]}" for label, i in explorer.class_choice.options)
    explorer.search.value = "owl"
    assert explorer.class_choice.value == 3 and "3 · owl" in html.unescape(explorer.status.value)
    with pytest.raises(ValueError, match="the model gives 10 class scores, class_names holds 2 items"):
        explore(model, [model[3]], x, rgb, class_names=["cat", "dog"])


# --- 9. wrapped and compiled models ------------------------------------------------------------

def test_wrapped_and_compiled_models_keep_their_preprocessing_and_maps():
    vit = tiny_timm("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, embed_dim=32, num_heads=2)
    x = noise(1, 3, 32, 32)
    expected = gradcam(vit, [vit.blocks[1].norm1], 1, x)
    for wrapped in (nn.Sequential(vit), nn.DataParallel(vit), torch.compile(vit, backend="eager")):
        assert preprocessing(wrapped) == preprocessing(vit) and preprocessing(vit).mean == (0.5, 0.5, 0.5)
        with left_as_it_was(wrapped):
            assert default_target_layers(wrapped) == [vit.blocks[1].norm1]
            assert np.abs(gradcam(wrapped, [vit.blocks[1].norm1], 1, x) - expected).max() < 1e-6
    assert agreement(vit, vit.blocks[1].norm1, x, reshape=tokens_reshape(4, 4, 1)) < AGREE


# --- 10. a layer that runs twice in one forward pass -------------------------------------------

def test_a_layer_called_twice_uses_its_first_call_as_pytorch_grad_cam_does_and_says_so():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = calibrated(resnet18(weights=None, num_classes=10))
    x = noise(1, 3, 64, 64)
    layer = model.layer3[1].relu                                 # BasicBlock calls its one ReLU twice
    with left_as_it_was(model), pytest.warns(UserWarning, match=r"layer3\[1\]\.relu ran 2 times.*first call.*"
                                                                r"layer3\[1\]"):
        ours = gradcam(model, [layer], 1, x)
    theirs = their_gradcam(model, layer, x, 1, None)
    assert np.abs(ours - theirs).max() < AGREE


# --- 11. smaller cases -------------------------------------------------------------------------

def test_a_nan_or_inf_pixel_is_named_before_any_work():
    model = tiny_cnn()
    x = noise(1, 3, 16, 16)
    x[0, 1, 4, 5] = float("nan")
    with left_as_it_was(model), pytest.raises(ValueError, match=r"input_tensor holds 1 NaN or infinite value.*"
                                                                r"\[0, 1, 4, 5\]"):
        gradcam(model, [model[3]], 1, x)


@pytest.mark.parametrize("builder, options, side", [("inception_v3", {"init_weights": False}, 299),
                                                     ("efficientnet_b3", {}, 300), ("swin_v2_t", {}, 256),
                                                     ("efficientnet_v2_s", {}, 384), ("resnet18", {}, 224),
                                                     ("inception_v3", {"init_weights": False, "num_classes": 2}, 299)])
def test_torchvision_models_get_the_size_of_their_own_weights(builder, options, side):
    import torchvision.models as tvm

    model = getattr(tvm, builder)(weights=None, **options)
    assert preprocessing(model).size == (side, side)
    x, rgb = load_image(fetch("both.png"), model=model)
    assert min(x.shape[-2:]) == side and rgb.shape[:2] == tuple(x.shape[-2:])


def test_resnet18_is_explained_with_its_own_channel_count():
    from torchvision.models import resnet18, resnet50

    assert "512 feature maps" in explain_target_layer(resnet18(weights=None))
    assert "2048 feature maps" in explain_target_layer(resnet50(weights=None))


def test_class_ids_given_as_tensors_are_taken():
    model, x = tiny_cnn(), noise(1, 3, 16, 16)
    with torch.no_grad():
        top = model(x).argmax(1)                                  # tensor([k])
    assert np.array_equal(gradcam(model, [model[3]], top, x), gradcam(model, [model[3]], int(top), x))


def test_explore_refuses_a_batch_and_offers_every_layer_it_is_given():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = resnet18(weights=None, num_classes=10).eval()
    x, rgb = noise(2, 3, 64, 64), np.zeros((64, 64, 3), np.float32)
    with pytest.raises(ValueError, match=r"one image at a time, but input_tensor holds 2: .*input_tensor\[i:i \+ 1\]"):
        explore(model, [model.layer4], x, rgb)
    with pytest.warns(UserWarning, match=r"one layer at a time: it starts at layer3, and layer4 is in its Layer list"):
        explorer = explore(model, [model.layer3, model.layer4], x[:1], rgb).explorer
    assert explorer.layer_choice.value == "layer3"
    assert {"layer3", "layer4"} <= {value for _, value in explorer.layer_choice.options}
    conv = model.layer4[1].conv2                               # not among the usual choices: offered first
    with pytest.warns(UserWarning, match=r"starts at layer3, and layer4\[1\]\.conv2 is in its Layer list"):
        explorer = explore(model, [model.layer3, conv], x[:1], rgb).explorer
    assert explorer.layer_choice.options[0][1] == "layer4[1].conv2"
