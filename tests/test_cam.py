import copy

import numpy as np
import pytest
import torch
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from helpers import METHODS, compute_cams, default_target_layers, gradcam, load_image

LIBRARY = {"GradCAM": GradCAM, "GradCAM++": GradCAMPlusPlus, "HiResCAM": HiResCAM,
           "LayerCAM": LayerCAM, "EigenCAM": EigenCAM}


def library_cam(model, layers, class_id, x, method="GradCAM"):
    training = model.training
    with LIBRARY[method](model=model, target_layers=layers) as cam:
        result = cam(input_tensor=x, targets=None if class_id is None else [ClassifierOutputTarget(class_id)])[0]
    model.train(training)        # BaseCAM calls model.eval() on the model it is given
    return result


@pytest.mark.parametrize("which", ["random_resnet", "stand_in"])
@pytest.mark.parametrize("class_id", [None, 245, 281, 918])
def test_gradcam_agrees_with_pytorch_grad_cam(request, both, which, class_id):
    model = request.getfixturevalue(which)
    layers = default_target_layers(model)
    ours = gradcam(model, layers, class_id, both[0])
    theirs = library_cam(model, layers, class_id, both[0])
    assert ours.dtype == np.float32 and ours.shape == (224, 224)
    assert ours.min() >= 0 and ours.max() <= 1 and (ours.max() > 0.99 or ours.max() == 0)   # 0: no positive evidence
    assert np.abs(ours - theirs).max() <= 1e-2


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_agrees_with_pytorch_grad_cam(stand_in, both, method):
    layers = default_target_layers(stand_in)
    ours = gradcam(stand_in, layers, 281, both[0], method=method)
    assert np.abs(ours - library_cam(stand_in, layers, 281, both[0], method)).max() <= 1e-2


def test_several_layers_and_a_non_square_image(random_resnet):
    from PIL import Image

    x, _ = load_image(Image.new("RGB", (300, 200), "gray"))
    layers = [random_resnet.layer3, random_resnet.layer4]
    ours = gradcam(random_resnet, layers, 1, x)
    assert ours.shape == (224, 336)
    assert np.abs(ours - library_cam(random_resnet, layers, 1, x)).max() <= 1e-2


def test_a_single_layer_need_not_be_in_a_list(stand_in, both):
    as_list = gradcam(stand_in, [stand_in.conv_head], 281, both[0])
    assert np.array_equal(gradcam(stand_in, stand_in.conv_head, 281, both[0]), as_list)


def test_none_means_the_predicted_class_and_numpy_ints_work(stand_in, both):
    predicted = gradcam(stand_in, default_target_layers(stand_in), None, both[0])
    assert np.array_equal(predicted, gradcam(stand_in, default_target_layers(stand_in), np.int64(243), both[0]))
    assert not np.array_equal(predicted, gradcam(stand_in, default_target_layers(stand_in), 281, both[0]))


@pytest.mark.parametrize("bad", [True, 245.0, "245", -1, 1000])
def test_bad_class_ids_state_the_range(stand_in, both, bad):
    with pytest.raises((TypeError, ValueError), match=r"0\.\.999"):
        gradcam(stand_in, default_target_layers(stand_in), bad, both[0])


def test_a_layer_the_model_never_runs_is_named(both):
    model = copy.deepcopy(__import__("helpers").load_model("efficientnet_lite0"))
    model.spare_head = torch.nn.Conv2d(320, 8, 1)          # part of the model, never called
    with pytest.raises(ValueError, match="spare_head.*never ran"):
        gradcam(model, [model.spare_head], 245, both[0])
    assert not model.spare_head._forward_hooks


def test_layers_from_elsewhere_and_non_feature_maps_are_refused(stand_in, both):
    with pytest.raises(ValueError, match="not part of this model"):
        gradcam(stand_in, [torch.nn.Conv2d(3, 3, 1)], 245, both[0])
    with pytest.raises(ValueError, match="classifier.*not a feature map"):
        gradcam(stand_in, [stand_in.classifier], 245, both[0])
    with pytest.raises(TypeError, match="list of layers"):
        gradcam(stand_in, [], 245, both[0])
    with pytest.raises((TypeError, ValueError), match=r"\[N, 3, H, W\]"):
        gradcam(stand_in, default_target_layers(stand_in), 245, both[1])
    assert all(not m._forward_hooks for m in stand_in.modules())


def _state(model):
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def test_the_callers_model_is_left_exactly_as_it_was(both):
    from torchvision.models import resnet50

    torch.manual_seed(3)
    model = resnet50(weights=None)
    model.train()
    model.layer2.eval()                                  # a mixed mode must survive too
    before = _state(model)
    modes = [m.training for m in model.modules()]
    heatmap = gradcam(model, [model.layer4], 245, both[0])
    assert heatmap.shape == (224, 224)
    assert [m.training for m in model.modules()] == modes
    after = _state(model)
    assert all(torch.equal(before[k], after[k]) for k in before)       # weights and BN statistics
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())
    with pytest.raises(ValueError):
        gradcam(model, [model.fc], 245, both[0])          # and after an error
    assert [m.training for m in model.modules()] == modes
    assert all(not m._forward_hooks for m in model.modules())


def test_it_works_inside_no_grad_and_with_frozen_weights(stand_in, both):
    reference = gradcam(stand_in, default_target_layers(stand_in), 281, both[0])
    frozen = copy.deepcopy(stand_in).requires_grad_(False)
    with torch.no_grad():
        inside = gradcam(frozen, default_target_layers(frozen), 281, both[0])
    assert np.abs(inside - reference).max() < 1e-5


def test_a_batch_gives_one_map_per_image(stand_in, both):
    x = torch.cat([both[0], both[0].flip(-1)])
    maps, logits = compute_cams(stand_in, default_target_layers(stand_in), [281, 281], x)
    assert maps.shape == (2, 224, 224) and logits.shape == (2, 1000)
    for index in range(2):                              # each map is that image's own map
        alone = gradcam(stand_in, default_target_layers(stand_in), 281, x[index:index + 1])
        assert np.abs(maps[index] - alone).max() < 1e-4
    assert np.abs(maps[0] - maps[1]).max() > 0.1
    with pytest.raises(ValueError, match="one class id per image"):
        compute_cams(stand_in, default_target_layers(stand_in), [281], x)


def _peak(heatmap):
    return np.unravel_index(int(heatmap.argmax()), heatmap.shape)


@pytest.mark.parametrize("class_id", [None, 245])
def test_dog_classes_light_up_the_dog_at_the_top(stand_in, both, class_id):
    heatmap = gradcam(stand_in, default_target_layers(stand_in), class_id, both[0])
    row, col = _peak(heatmap)
    assert row < 0.55 * 224 and 0.25 * 224 < col < 0.85 * 224
    assert heatmap[:112].mean() > 1.5 * heatmap[150:].mean()


@pytest.mark.parametrize("class_id", [281, 285])
def test_cat_classes_light_up_the_cat_at_the_bottom(stand_in, both, class_id):
    heatmap = gradcam(stand_in, default_target_layers(stand_in), class_id, both[0])
    row, _ = _peak(heatmap)
    assert row > 0.6 * 224
    assert heatmap[150:].mean() > 5 * heatmap[:112].mean()


@pytest.mark.parametrize("which", ["random_resnet", "stand_in"])
def test_at_the_pooled_layer_gradcams_weights_are_the_classifier_weights_over_positions(request, both, which):
    """Issue 17: where the model averages a layer and reads it with one linear layer, alpha_k = w[c, k] / Z.

    So GradCAM there is CAM. ResNet-50's layer4 is that layer; the stand-in's is bn2, after its
    last block (its default target, blocks[6], has a 1x1 convolution and a ReLU6 after it, so
    there the weights are not the classifier's).
    """
    from helpers.cam import class_gradients, forward_with_activations
    from helpers.models import pooled_layer_and_classifier

    model = request.getfixturevalue(which)
    layer, classifier = pooled_layer_and_classifier(model)
    for class_id in (245, 281):
        logits, (activations,) = forward_with_activations(model, [layer], both[0])
        gradients, = class_gradients(logits, [activations], [class_id])
        alpha = gradients.mean(dim=(2, 3))[0]
        positions = activations.shape[2] * activations.shape[3]
        assert positions == 49 and alpha.shape == classifier.weight[class_id].shape
        expected = classifier.weight[class_id].detach() / positions
        assert torch.allclose(alpha, expected, rtol=1e-4, atol=1e-7), float((alpha - expected).abs().max())
        # the GradCAM map there is CAM: the classifier's weighted sum of the feature maps, positive part
        cam = torch.relu(torch.einsum("k,khw->hw", classifier.weight[class_id].detach(), activations[0].detach()))
        ours = gradcam(model, [layer], class_id, both[0], stretch=False)
        small = torch.nn.functional.interpolate((cam / positions)[None, None], size=(224, 224), mode="bilinear",
                                                align_corners=False)[0, 0].numpy()
        assert np.abs(ours - small).max() <= 1e-5 * max(1.0, float(small.max()))
    if which == "stand_in":                     # the default target layer is not the pooled one
        logits, (activations,) = forward_with_activations(model, default_target_layers(model), both[0])
        gradients, = class_gradients(logits, [activations], [281])
        assert gradients.mean(dim=(2, 3))[0].shape != classifier.weight[281].shape


@pytest.mark.parametrize("which", ["random_resnet", "stand_in"])
def test_stretch_false_keeps_the_maps_own_units(request, both, which):
    """Issue 17: the map before it is stretched, whose largest value is how strong the evidence is."""
    from helpers.cam import class_gradients, forward_with_activations

    model = request.getfixturevalue(which)
    layers = default_target_layers(model)
    for class_id in (245, 537):
        raw = gradcam(model, layers, class_id, both[0], stretch=False)
        stretched = gradcam(model, layers, class_id, both[0])
        logits, (activations,) = forward_with_activations(model, layers, both[0])
        gradients, = class_gradients(logits, [activations], [class_id])
        grid = torch.relu((gradients.mean(dim=(2, 3), keepdim=True) * activations).sum(dim=1))[0].detach()
        assert raw.shape == stretched.shape == (224, 224) and raw.min() >= 0
        if float(grid.max()) == 0:
            assert raw.max() == 0 and stretched.max() == 0
            continue
        # the largest value is the grid's own, less a few percent that the bilinear resize smooths away
        assert 0.9 * float(grid.max()) <= raw.max() <= float(grid.max()) * (1 + 1e-5)
        assert stretched.max() == pytest.approx(1.0, abs=1e-3)
        assert np.abs(stretched - (raw - raw.min()) / (raw.max() - raw.min())).max() <= 0.05
