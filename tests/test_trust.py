import numpy as np
import pytest
import torch

from helpers import LESSON_CLASSES, default_target_layers, fetch, gradcam, load_image
from helpers.trust import (area_under, deletion_curve, edge_map, explain_images, guided_backprop, guided_model,
                           insertion_curve, randomisation_check, randomised_model, randomised_models, saliency,
                           spearman)


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
        _, randomised = randomised_model(stand_in, seed, 3)
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


def test_each_cascade_stage_is_its_own_model_and_changes_the_map(stand_in, both):
    """Issue 8: every stage used to be the same object, so the cascade figure showed one model 4 times."""
    before = _state(stand_in)
    stages = list(randomised_models(stand_in, seed=0, stages=4))
    models = [stand_in] + [m for _, m in stages]
    assert len({id(m) for m in models}) == 5                                  # no object yielded twice
    # stage k re-initialised one more stage than stage k-1: the weights differ, stage by stage
    assert not torch.equal(models[0].classifier.weight, models[1].classifier.weight)
    assert torch.equal(models[1].conv_head.weight, stand_in.conv_head.weight)
    assert not torch.equal(models[1].conv_head.weight, models[2].conv_head.weight)
    assert torch.equal(models[2].blocks[6][0].conv_pw.weight, stand_in.blocks[6][0].conv_pw.weight)
    assert not torch.equal(models[2].blocks[6][0].conv_pw.weight, models[3].blocks[6][0].conv_pw.weight)
    assert not torch.equal(models[3].blocks[5][0].conv_pw.weight, models[4].blocks[5][0].conv_pw.weight)
    # ... and so does what GradCAM shows (tabby on both.png): no two consecutive maps are the same
    maps = [gradcam(m, default_target_layers(m), 281, both[0]) for m in models]
    for earlier, later in zip(maps, maps[1:]):
        assert np.abs(earlier - later).max() > 0.05
    # the last stage equals randomised_model's, which keeps no copy per stage
    label, last = randomised_model(stand_in, seed=0, stages=4)
    assert label == stages[-1][0] == "classifier ... blocks[5]"
    assert all(torch.equal(a, b) for a, b in zip(last.state_dict().values(), models[-1].state_dict().values()))
    after = _state(stand_in)
    assert all(torch.equal(before[k], after[k]) for k in before)              # the caller's model is untouched
    assert not stand_in.training


def test_the_cascade_of_resnet50s_architecture(random_resnet):
    before = _state(random_resnet)
    labels, fc, layer4 = [], [], []
    for label, stage in randomised_models(random_resnet, seed=1, stages=3):   # one stage alive at a time
        labels.append(label)
        fc.append(stage.fc.weight.clone())
        layer4.append(stage.layer4[2].conv3.weight.clone())
    assert labels == ["fc", "fc+layer4", "fc+layer4+layer3"]
    assert not torch.equal(fc[0], before["fc.weight"]) and torch.equal(fc[0], fc[1])
    assert torch.equal(layer4[0], before["layer4.2.conv3.weight"])
    assert not torch.equal(layer4[1], layer4[0])
    after = _state(random_resnet)
    assert all(torch.equal(before[k], after[k]) for k in before)


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


def test_deletion_and_insertion_on_a_bfloat16_model_and_one_image_only():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = resnet18(weights=None, num_classes=5).eval().to(torch.bfloat16)
    x = torch.randn(1, 3, 32, 32)
    heatmap = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    for curve in (deletion_curve, insertion_curve):
        values = curve(model, x, 1, heatmap, steps=2)
        assert values.dtype == np.float32 and values.shape == (3,) and np.all((values >= 0) & (values <= 1))
    with pytest.raises(ValueError, match="one image"):
        deletion_curve(model, torch.randn(2, 3, 32, 32), 1, heatmap, steps=2)
    with pytest.raises(ValueError, match="0..4"):
        deletion_curve(model, x, 7, heatmap, steps=2)         # the model's own 5 classes


def _tiny_resnet():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    return resnet18(weights=None, num_classes=5).eval()


def test_randomisation_check_refuses_no_seeds_and_no_stages_and_reads_a_generator():
    model, x = _tiny_resnet(), torch.randn(1, 3, 32, 32)
    layers = lambda m: [m.layer4]                                   # noqa: E731
    with pytest.raises(ValueError, match="seeds is empty"):
        randomisation_check(model, layers, [1], x, seeds=[], stages=1, progress=False)
    with pytest.raises(ValueError, match="stages must be"):
        randomisation_check(model, layers, [1], x, seeds=[0], stages=0, progress=False)
    result = randomisation_check(model, layers, [1], x, seeds=(s for s in [0, 1]), stages=1, progress=False)
    assert result["pairs"] == 2 and result["stages"] == "fc"


def test_randomised_models_leave_the_callers_random_numbers_alone():
    model = _tiny_resnet()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    next(randomised_models(model, 7, 1))
    assert torch.equal(torch.rand(3), expected)


# --- guided backpropagation without a copy of the model (issue 23) ----------------------------------

class _OldGuidedClamp(torch.autograd.Function):
    """Before issue 23: clamp(x, 0, upper), backward only positive gradients where x was active."""

    @staticmethod
    def forward(ctx, x, upper):
        ctx.save_for_backward(x)
        ctx.upper = upper
        return x.clamp(0, upper)

    @staticmethod
    def backward(ctx, grad):
        x, = ctx.saved_tensors
        return grad * ((x > 0) & (x < ctx.upper) & (grad > 0)), None


class _OldGuided(torch.nn.Module):
    def __init__(self, upper):
        super().__init__()
        self.upper = upper

    def forward(self, x):
        return _OldGuidedClamp.apply(x, self.upper)


def _old_guided_backprop(model, class_id, x):
    """Guided backprop as it was before issue 23: a deep copy with its ReLU and ReLU6 modules swapped."""
    import copy

    guided = copy.deepcopy(model)
    for parent in list(guided.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, (torch.nn.ReLU, torch.nn.ReLU6)):
                setattr(parent, name, _OldGuided(6.0 if isinstance(child, torch.nn.ReLU6) else float("inf")))
    return saliency(guided.eval(), class_id, x)


def _everything(model):
    """What a call must leave as it was: weights and buffers, each module's mode, type and hooks."""
    return ({k: v.clone() for k, v in model.state_dict().items()},
            [(name, type(m), m.training, dict(m._forward_hooks), dict(m._forward_pre_hooks),
              dict(m._backward_hooks)) for name, m in model.named_modules()])


def _assert_same(before, after):
    assert before[0].keys() == after[0].keys() and all(torch.equal(before[0][k], after[0][k]) for k in before[0])
    assert before[1] == after[1]


class _TinyRelu(torch.nn.Module):
    """ReLU inplace and not, ReLU6, one ReLU module called twice, BatchNorm, and 7 classes."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8)
        self.act1, self.act2 = torch.nn.ReLU(inplace=True), torch.nn.ReLU6()
        self.conv2, self.conv3 = torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 3, padding=1)
        self.act3, self.fc = torch.nn.ReLU(), torch.nn.Linear(8, 7)

    def forward(self, x):
        x = self.act1(self.bn(self.conv1(x)))
        x = self.act2(self.conv2(x) * 4)                   # some units above 6
        x = self.act3(self.conv3(x))
        x = self.act3(x - 0.1)                             # the same module, a second time
        return self.fc(x.mean(dim=(2, 3)))


@pytest.mark.parametrize("which", ["stand-in (ReLU6, inplace)", "ResNet-50 (ReLU, inplace)", "tiny (all kinds)"])
def test_guided_backprop_gives_the_same_map_as_the_deep_copy_did_and_leaves_the_model_alone(
        which, stand_in, random_resnet, both):
    torch.manual_seed(0)
    model = {"stand-in (ReLU6, inplace)": stand_in, "ResNet-50 (ReLU, inplace)": random_resnet,
             "tiny (all kinds)": _TinyRelu()}[which]
    x = both[0] if which != "tiny (all kinds)" else torch.randn(1, 3, 32, 32)
    handle = model.register_forward_hook(lambda *args: None)              # the caller's own hook stays
    model.train()                                                          # and its mode
    try:
        before = _everything(model)
        for class_id in (245, 281) if which != "tiny (all kinds)" else (3, 5):
            new = guided_backprop(model, class_id, x)
            _assert_same(before, _everything(model))
            old = _old_guided_backprop(model, class_id, x)
            assert new.shape == old.shape == tuple(x.shape[-2:]) and new.max() == pytest.approx(1)
            assert np.abs(new - old).max() <= 1e-6
            assert np.abs(guided_backprop(model, class_id, x, guided_model(model)) - old).max() <= 1e-6
            assert spearman(new, saliency(model, class_id, x)) < 0.999                 # guided is not vanilla
        _assert_same(before, _everything(model))
        assert model.training and handle.id in model._forward_hooks
    finally:
        handle.remove()
        model.eval()


def test_guided_backprop_removes_its_hooks_when_the_model_fails():
    model = _TinyRelu().eval()
    before = _everything(model)
    with pytest.raises(RuntimeError):
        guided_backprop(model, 3, torch.randn(1, 4, 32, 32))               # 4 channels: the first conv fails
    _assert_same(before, _everything(model))
    with pytest.raises(ValueError, match="no nn.ReLU or nn.ReLU6"):
        guided_backprop(torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten()), 0,
                        torch.randn(1, 3, 5, 5))


def test_guided_model_shares_the_weights_and_keeps_the_originals_activations(stand_in):
    twin = guided_model(stand_in)
    assert twin.conv_stem.weight.data_ptr() == stand_in.conv_stem.weight.data_ptr()   # no copy of the weights
    assert twin.bn1.running_mean is stand_in.bn1.running_mean
    assert sum(isinstance(m, torch.nn.ReLU6) for m in stand_in.modules()) == 33
    assert not any(isinstance(m, torch.nn.ReLU6) for m in twin.modules()) and not twin.training


# --- deletion and insertion: the same curves as before issue 23, cheaper --------------------------

def _old_curve(model, x, class_id, heatmap, steps, insert):
    """The curve as it was computed before issue 23: every mask filled, every frame made, then the passes."""
    from helpers.trust import _blurred

    order = torch.argsort(torch.from_numpy(np.ascontiguousarray(heatmap)).flatten(), descending=True)
    n, blurred, frames = order.numel(), _blurred(x), []
    for step in range(steps + 1):
        mask = torch.zeros(n)
        mask[order[: round(n * step / steps)]] = 1.0
        mask = mask.reshape(1, 1, *x.shape[-2:])
        frames.append(blurred * (1 - mask) + x * mask if insert else x * (1 - mask) + blurred * mask)
    with torch.no_grad():
        batch = torch.cat(frames)
        logits = torch.cat([model.eval()(batch[i:i + 4]) for i in range(0, len(batch), 4)])
    return torch.softmax(logits, dim=1)[:, class_id].numpy()


def test_deletion_and_insertion_curves_are_those_of_before(stand_in, random_resnet):
    x, _ = load_image(fetch("dog_cat.jfif"))                   # not square: 224 x 359
    small = torch.nn.functional.interpolate(x, size=(64, 96), mode="bilinear", align_corners=False)
    cases = [(stand_in, x, 6), (random_resnet, small, 16), (random_resnet, small, 3)]
    for model, image, steps in cases:
        before = _state(model)
        heatmap = gradcam(model, default_target_layers(model), 207, image)
        random_map = np.random.default_rng(1).random(heatmap.shape).astype(np.float32)
        for insert, curve in ((False, deletion_curve), (True, insertion_curve)):
            for m in (heatmap, random_map):
                new = curve(model, image, 207, m, steps=steps)
                assert new.shape == (steps + 1,)
                assert np.abs(new - _old_curve(model, image, 207, m, steps, insert)).max() < 1e-5
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()) and not model.training
    # the default: 16 steps
    assert np.array_equal(deletion_curve(random_resnet, small, 207, random_map),
                          deletion_curve(random_resnet, small, 207, random_map, steps=16))


@pytest.mark.parametrize("method", ["GradCAM", "GradCAM++", "EigenCAM"])
def test_the_randomisation_checks_maps_of_many_classes_are_compute_cams_maps(method, stand_in, both):
    """One forward pass and a gradient per class: the same maps as compute_cams with the image once per class."""
    from helpers import compute_cams
    from helpers.trust import _cams_per_class

    classes = list(LESSON_CLASSES)
    layers = default_target_layers(stand_in)
    before = _state(stand_in)
    maps = _cams_per_class(stand_in, layers, classes, both[0], method)
    expected = np.concatenate([compute_cams(stand_in, layers, classes[i:i + 4], both[0].expand(len(classes[i:i + 4]),
                                                                                                 -1, -1, -1), method)[0]
                               for i in range(0, len(classes), 4)])
    assert maps.shape == (11, 224, 224) and maps.dtype == np.float32
    assert np.abs(maps - expected).max() < 1e-4
    assert all(torch.equal(before[k], v) for k, v in stand_in.state_dict().items()) and not stand_in.training
    with pytest.raises(ValueError, match="0..999"):
        _cams_per_class(stand_in, layers, [1000], both[0], method)
