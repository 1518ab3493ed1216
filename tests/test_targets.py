"""Issue 24: any score as the target (segmentation, detection, regression, embeddings, several heads),
class names and probabilities that fit the model, and the messages whose code runs.

Models are torchvision's with random weights (``weights=None, weights_backbone=None``) at small sizes,
and small CNNs; Hugging Face's are in tests/test_hugging_face.py. Every piece of code that a message
suggests (between backticks) is run here: ``run_advice``.
"""

from __future__ import annotations

import re
from collections import namedtuple

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import (BinaryClassifierOutputTarget, ClassifierOutputSoftmaxTarget,
                                                  ClassifierOutputTarget, FasterRCNNBoxScoreTarget,
                                                  SemanticSegmentationTarget)
from torch import nn

from helpers import compute_cams, default_target_layers, gradcam, load_image, viz_gradcam
from helpers.models import ClassScores, explain_target_layer
from helpers.targets import (chosen_classes, class_names_of, class_scores, image_output, probability_of,
                             target_scores)

AGREE = 1e-5


def run_advice(message: str, namespace: dict) -> dict:
    """Run every piece of code in ``message`` (between backticks) in ``namespace``, in order. Each
    ``target=`` piece's target is kept in ``namespace["targets"]``, the first as ``namespace["target"]``;
    an expression's value as ``namespace["value"]``."""
    pieces = re.findall(r"`([^`]+)`", message)
    assert pieces, f"the message suggests no code: {message}"
    namespace.setdefault("torch", torch)
    targets = []
    for piece in pieces:
        try:
            namespace["value"] = eval(compile(piece, "<the message's advice>", "eval"), namespace)   # an expression
            continue
        except SyntaxError:
            exec(compile(piece, "<the message's advice>", "exec"), namespace)
        if piece.startswith("target="):
            targets.append(namespace["target"])
    namespace["targets"] = targets
    if targets:
        namespace["target"] = targets[0]
    return namespace


def state_of(model):
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def unchanged(model, before, modes):
    after = model.state_dict()
    return all(torch.equal(before[k], after[k]) for k in before) and \
        [m.training for m in model.modules()] == modes and \
        all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def library_cam(model, layers, targets, x, reshape=None):
    training = [m.training for m in model.modules()]
    with GradCAM(model=model, target_layers=layers, reshape_transform=reshape) as cam:
        result = cam(input_tensor=x, targets=targets)
    for module, mode in zip(model.modules(), training):
        module.training = mode
    return result


class SmallCNN(nn.Module):
    def __init__(self, classes: int = 10, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


class SimilarityToConceptTarget:
    """As pytorch-grad-cam's tutorial "Explaining similarity" defines it (the library does not ship it)."""

    def __init__(self, features):
        self.features = features

    def __call__(self, model_output):
        cos = torch.nn.CosineSimilarity(dim=0)
        return cos(model_output, self.features)


def noise(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# --- the mechanism ------------------------------------------------------------------------------

def test_target_scores_reads_ids_the_top_class_functions_and_library_targets():
    logits = torch.tensor([[0.5, 2.0, -1.0], [3.0, 0.0, 0.25]], requires_grad=True)
    assert target_scores(logits, [None, None]).tolist() == [2.0, 3.0]
    assert target_scores(logits, [2, 1]).tolist() == [-1.0, 0.0]
    mixed = target_scores(logits, [lambda out: out[0] - out[1], ClassifierOutputTarget(2)])
    assert mixed.tolist() == [-1.5, 0.25] and mixed.requires_grad
    soft = target_scores(logits, [ClassifierOutputSoftmaxTarget(1), None])
    assert soft[0].item() == pytest.approx(torch.softmax(logits[0], 0)[1].item())
    assert chosen_classes(logits, [None, 2]) == [1, 2] and chosen_classes(logits, [max, None]) == [None, 0]
    one = torch.tensor([[0.75], [-2.0]], requires_grad=True)            # a binary head [N, 1]
    assert target_scores(one, [BinaryClassifierOutputTarget(1), BinaryClassifierOutputTarget(0)]).tolist() == \
        [0.75, 2.0]
    regression = torch.tensor([1.5, -0.5], requires_grad=True)           # [N]: one score per image
    assert target_scores(regression, [None, 0]).tolist() == [1.5, -0.5]
    with pytest.raises(ValueError, match=r"class_id must be an int in 0\.\.2"):
        target_scores(logits, [3, None])
    with pytest.raises(TypeError, match="a target must be a class id.*or a function of the model's output"):
        target_scores(logits, ["cat", None])


def test_the_output_for_one_image_is_what_pytorch_grad_cams_targets_expect():
    seg = {"out": torch.arange(2 * 3 * 4.0).reshape(2, 3, 2, 2), "aux": torch.zeros(2, 3, 2, 2)}
    assert torch.equal(image_output(seg, 1), seg["out"][1])
    detections = [{"boxes": torch.zeros(2, 4), "scores": torch.tensor([0.9, 0.1])}, {"boxes": torch.zeros(0, 4)}]
    assert image_output(detections, 0, 2) is detections[0]
    heads = {"species": torch.arange(6.0).reshape(2, 3), "age": torch.tensor([[30.0], [40.0]])}
    assert image_output(heads, 1)["species"].tolist() == [3.0, 4.0, 5.0] and image_output(heads, 1)["age"].item() == 40
    Pair = namedtuple("Pair", "scores features")
    pair = image_output(Pair(torch.eye(2), torch.ones(2, 4, 3, 3)), 1, 2)
    assert isinstance(pair, Pair) and pair.scores.tolist() == [0.0, 1.0] and pair.features.shape == (4, 3, 3)


def test_a_library_target_gives_the_class_ids_map_and_pytorch_grad_cams():
    model, x = SmallCNN().eval(), noise(2, 3, 32, 32)
    layers = [model.features[2]]
    ours, logits = compute_cams(model, layers, [ClassifierOutputTarget(3), ClassifierOutputTarget(7)], x)
    assert logits.shape == (2, 10)
    assert np.abs(ours - compute_cams(model, layers, [3, 7], x)[0]).max() == 0
    theirs = library_cam(model, layers, [ClassifierOutputTarget(3), ClassifierOutputTarget(7)], x)
    assert np.abs(ours - theirs).max() < AGREE
    difference = gradcam(model, layers, lambda output: output[3] - output[7], x[:1])
    assert np.abs(difference - library_cam(model, layers, [lambda o: o[3] - o[7]], x[:1])[0]).max() < AGREE


def test_one_target_alone_is_used_for_every_image_and_a_wrong_count_says_how():
    model, x = SmallCNN().eval(), noise(3, 3, 16, 16)
    layers = [model.features[2]]
    each, _ = compute_cams(model, layers, [4, 4, 4], x)
    assert np.array_equal(compute_cams(model, layers, 4, x)[0], each)
    with pytest.raises(ValueError, match=r"1 for 3 images") as error:
        compute_cams(model, layers, [4], x)
    advice = run_advice(str(error.value), {"target": 4})
    assert advice["value"] == [4, 4, 4]
    assert np.array_equal(compute_cams(model, layers, advice["value"], x)[0], each)


def test_a_target_that_gives_no_number_a_constant_or_many_is_named():
    model, x = SmallCNN().eval(), noise(1, 3, 16, 16)
    layers = [model.features[2]]
    with pytest.raises(ValueError, match=r"gave 10 numbers \(shape \[10\]\).*one"):
        gradcam(model, layers, lambda output: output * 2, x)
    with pytest.raises(ValueError, match=r"plain float.*no \.item\(\)"):
        gradcam(model, layers, lambda output: output[3].item(), x)
    with pytest.raises(ValueError, match="a constant that does not depend on the model's output"):
        gradcam(model, layers, lambda output: output[3].detach(), x)
    with pytest.raises(IndexError) as error:
        gradcam(model, layers, lambda output: output["logits"], x)
    if hasattr(error.value, "__notes__"):
        assert "was given the model's output for image 0: a tensor [10]" in error.value.__notes__[0]


# --- segmentation --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def deeplab():
    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

    torch.manual_seed(0)
    return deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=4, aux_loss=False).eval()


class OutOnly(nn.Module):
    """pytorch-grad-cam's SegmentationModelOutputWrapper: what its users have to write."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


def test_segmentation_with_semantic_segmentation_target_and_no_wrapper(deeplab):
    x = noise(1, 3, 64, 64)
    before, modes = state_of(deeplab), [m.training for m in deeplab.modules()]
    layers = default_target_layers(deeplab)
    assert layers == [deeplab.backbone["16"]]                     # not deeplab.classifier, the scores themselves
    assert "pools the grid away" not in explain_target_layer(deeplab)
    with torch.no_grad():
        scores = deeplab(x)["out"][0]
    category = int(torch.bincount(scores.argmax(0).flatten()).argmax())
    mask = (scores.argmax(0) == category).float().numpy()
    target = SemanticSegmentationTarget(category, mask)
    ours = gradcam(deeplab, layers, target, x)
    theirs = library_cam(OutOnly(deeplab), layers, [target], x)[0]
    assert ours.shape == (64, 64) and ours.max() == pytest.approx(1.0, abs=1e-3)
    assert np.abs(ours - theirs).max() < AGREE
    assert unchanged(deeplab, before, modes)
    # a class id alone does not say which pixels: the message's target does, and it is the same score
    with pytest.raises(ValueError, match="a score per class and pixel.*SemanticSegmentationTarget") as error:
        gradcam(deeplab, layers, category, x)
    advice = run_advice(str(error.value), {})
    assert f"output[{category}]" in str(error.value)
    assert np.abs(gradcam(deeplab, layers, advice["target"], x) - ours).max() < AGREE
    # a bare tensor [N, C, H, W] gets the same advice; compute_cams gives the target's scores
    with pytest.raises(ValueError, match=r"a tensor \[1, 4, 64, 64\]: a score per class and pixel") as error:
        gradcam(OutOnly(deeplab), layers, None, x)
    assert np.abs(gradcam(OutOnly(deeplab), layers, run_advice(str(error.value), {})["target"], x) - ours).max() < AGREE
    maps, scores = compute_cams(deeplab, layers, [target], x)
    assert scores.shape == (1,) and scores[0].item() == pytest.approx(float((torch.from_numpy(mask) * scores_of(
        deeplab, x)[category]).sum()), rel=1e-5)
    assert unchanged(deeplab, before, modes)


def scores_of(model, x):
    with torch.no_grad():
        return model(x)["out"][0]


def test_the_explorer_takes_a_target_for_a_model_without_class_scores(deeplab):
    from helpers import explore
    from helpers.explorer_state import TARGET

    x, rgb = noise(1, 3, 64, 64), np.zeros((64, 64, 3), np.float32)
    layers = default_target_layers(deeplab)
    mask = np.zeros((64, 64), np.float32)
    mask[10:40, 20:50] = 1
    target = SemanticSegmentationTarget(2, mask)
    explorer = explore(deeplab, layers, x, rgb, class_id=target).explorer
    assert explorer.state.class_ids == [TARGET] and explorer.state.label(TARGET) == "SemanticSegmentationTarget(2)"
    score = float((torch.from_numpy(mask) * scores_of(deeplab, x)[2]).sum())
    assert f"score = {score:.3g}" in explorer.status.value and "top class" not in explorer.status.value
    assert np.abs(explorer.maps.heatmap_for(TARGET) - gradcam(deeplab, layers, target, x)).max() < AGREE
    with pytest.raises(ValueError, match="a score per class and pixel"):
        explore(deeplab, layers, x, rgb)                     # no target: the message says which


def test_maps_of_a_backbone_or_per_pixel_scores_in_a_list_get_both_answers(deeplab):
    class Deep(nn.Module):                                        # deep supervision: a list of score maps
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            out = self.model(x)["out"]
            return [out, out[:, :, ::2, ::2]]

    model, x = Deep(deeplab).eval(), noise(1, 3, 64, 64)
    with pytest.raises(ValueError, match=r"features_only.*a score per class and pixel") as error:
        gradcam(model, [deeplab.backbone["16"]], None, x)
    heatmap = gradcam(model, [deeplab.backbone["16"]], run_advice(str(error.value), {})["target"], x)
    assert heatmap.shape == (64, 64) and np.isfinite(heatmap).all() and heatmap.max() > 0.99


# --- detection -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def detector():
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    torch.manual_seed(0)
    return fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, num_classes=3, min_size=128,
                                                 max_size=128, box_score_thresh=0.0).eval()


def test_detection_with_fasterrcnn_box_score_target_and_no_wrapper(detector, mirror):
    x, rgb = load_image(mirror / "both.png", model=detector)
    assert x.shape == (1, 3, 128, 128)
    assert np.abs(x[0].permute(1, 2, 0).numpy() - rgb).max() < 1e-6      # the model normalises inside: not twice
    before, modes = state_of(detector), [m.training for m in detector.modules()]
    layers = default_target_layers(detector)
    assert layers == [detector.backbone.body["16"]]                   # not the RPN's box regression
    reason = explain_target_layer(detector)
    assert "feature pyramid" in reason and "pools the grid away" not in reason
    with torch.no_grad():
        found = detector(x)[0]
    assert len(found["scores"]) > 0
    target = FasterRCNNBoxScoreTarget(labels=found["labels"][:1], bounding_boxes=found["boxes"][:1].numpy())
    ours = gradcam(detector, layers, target, x)
    theirs = library_cam(detector, layers, [target], x)[0]
    assert ours.shape == (128, 128) and np.abs(ours - theirs).max() < AGREE
    assert unchanged(detector, before, modes)
    with pytest.raises(ValueError, match="detections.*FasterRCNNBoxScoreTarget") as error:
        gradcam(detector, layers, None, x)
    most_confident = gradcam(detector, layers, run_advice(str(error.value), {})["target"], x)
    assert most_confident.shape == (128, 128) and most_confident.max() > 0.99
    # boxes that match no detection: a constant, said as such
    nowhere = FasterRCNNBoxScoreTarget(labels=[1], bounding_boxes=np.array([[0.0, 0.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match="FasterRCNNBoxScoreTarget.*a constant"):
        gradcam(detector, layers, nowhere, x)


# --- several heads, objects, regression ------------------------------------------------------

class TwoHeads(nn.Module):
    def __init__(self, kind="dict"):
        super().__init__()
        self.body, self.kind = SmallCNN(classes=16), kind
        self.species, self.age = nn.Linear(16, 5), nn.Linear(16, 1)

    def forward(self, x):
        features = self.body.fc(self.body.features(x).mean(dim=(2, 3)))
        species, age = self.species(features), self.age(features)
        if self.kind == "dict":
            return {"species": species, "age": age}
        if self.kind == "tuple":
            return species, age
        output = type("Output", (), {})()
        output.species, output.age = species, age
        return output


@pytest.mark.parametrize("kind", ["dict", "tuple", "object"])
def test_several_heads_are_told_a_target_and_a_wrapper_that_both_run(kind):
    model, x = TwoHeads(kind).eval(), noise(1, 3, 16, 16)
    layers = [model.body.features[2]]
    with pytest.raises(ValueError, match="which of them are the class scores") as error:
        gradcam(model, layers, 2, x)
    message = str(error.value)
    advice = run_advice(message, {"model": model, "ClassScores": ClassScores})
    wrapped = re.search(r"`(ClassScores\([^`]+\))`", message).group(1)
    scores_only = eval(wrapped, {"model": model, "ClassScores": ClassScores})
    via_target = gradcam(model, layers, advice["target"], x)
    via_wrapper = gradcam(scores_only, layers, 0, x)
    assert np.abs(via_target - via_wrapper).max() < AGREE and via_target.max() > 0.99


@pytest.mark.parametrize("kind", ["video", "tokens in a dict"])
def test_other_outputs_are_told_a_target_whose_code_runs(kind):
    class Other(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = SmallCNN(classes=4)

        def forward(self, x):
            features = self.net.features(x)                           # [N, 16, h, w]
            if kind == "video":
                return torch.stack([features, features * 2], dim=2)    # [N, 16, 2, h, w]
            return {"sequence": features.flatten(2).transpose(1, 2)}   # [N, h * w, 16]

    model, x = Other().eval(), noise(1, 3, 16, 16)
    with pytest.raises(ValueError, match="pass a target") as error:
        gradcam(model, [model.net.features[2]], None, x)
    heatmap = gradcam(model, [model.net.features[2]], run_advice(str(error.value), {})["target"], x)
    assert heatmap.shape == (16, 16) and np.isfinite(heatmap).all()


def test_one_score_tensor_on_an_object_and_a_regression_need_no_target(capsys):
    class Scores(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = SmallCNN(classes=4)

        def forward(self, x):
            output = type("Output", (), {})()
            output.scores = self.net(x)
            return output

    model, x = Scores().eval(), noise(1, 3, 16, 16)
    assert np.array_equal(gradcam(model, [model.net.features[2]], 1, x), gradcam(model.net, [model.net.features[2]], 1, x))
    regression = nn.Sequential(SmallCNN(classes=1), nn.Flatten(0)).eval()        # [N]: one number per image
    heatmap = gradcam(regression, [regression[0].features[2]], None, x)
    assert heatmap.shape == (16, 16) and heatmap.max() > 0.99
    viz_gradcam(regression, [regression[0].features[2]], None, x, np.zeros((16, 16, 3), np.float32), show=False)
    out = capsys.readouterr().out
    with torch.no_grad():
        value = float(regression(x)[0])
    assert f"Predicted class: class 0 (score = {value:.3g})" in out and "tench" not in out and "p =" not in out


def test_an_embedding_is_explained_by_similarity_not_as_classes():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("resnet10t", pretrained=False, num_classes=0).eval()
    x, reference_tensor = noise(1, 3, 64, 64), noise(1, 3, 64, 64, seed=1)
    layers = [model.layer4]
    with pytest.raises(ValueError, match=r"embeddings \(num_classes=0.*not a class.*SimilarityToConceptTarget") as error:
        gradcam(model, layers, None, x)
    from helpers.targets import image_output as image_output_
    advice = run_advice(str(error.value), {"model": model, "reference_tensor": reference_tensor,
                                           "image_output": image_output_})
    assert advice["concept"].shape == (512,)
    ours = gradcam(model, layers, SimilarityToConceptTarget(advice["concept"]), x)
    assert np.abs(ours - library_cam(model, layers, [SimilarityToConceptTarget(advice["concept"])], x)[0]).max() < AGREE
    assert np.abs(gradcam(model, layers, advice["target"], x) - ours).max() < AGREE
    dimension = gradcam(model, layers, advice["targets"][1], x)                   # one dimension, if wanted
    assert np.abs(dimension - gradcam(model, layers, lambda output: output[7], x)).max() == 0
    with pytest.raises(ValueError, match="not a class"):
        gradcam(model, layers, 7, x)


# --- names and probabilities that fit the model --------------------------------------------------

@pytest.mark.parametrize("classes", [21843, 10])
def test_any_class_count_prints_names_that_fit(classes, capsys):
    model, x = SmallCNN(classes=classes).eval(), noise(1, 3, 16, 16)
    rgb = np.zeros((16, 16, 3), np.float32)
    with torch.no_grad():
        logits = model(x)[0]
    top = int(logits.argmax())
    viz_gradcam(model, [model.features[2]], 3, x, rgb, show=False)
    out = capsys.readouterr().out
    p3, p_top = torch.softmax(logits, 0)[3].item(), torch.softmax(logits, 0)[top].item()
    assert f"Target class: class 3 (p = {p3:.3g}); the model's top class is class {top} (p = {p_top:.3g})" in out
    assert "tiger shark" not in out and f"p is a softmax over the {classes} classes (assumed: pass probability=" in out
    viz_gradcam(model, [model.features[2]], None, x, rgb, show=False, class_names=[f"n{i}" for i in range(classes)],
                probability=None)
    assert f"Predicted class: {top} · n{top} (score = {float(logits[top]):.3g})" in capsys.readouterr().out


@pytest.mark.parametrize("classes", [21843, 10, 1])
def test_the_explorer_fits_any_class_count_and_offers_a_target_first(classes):
    from helpers import explore
    from helpers.explorer_state import TARGET

    model, x = SmallCNN(classes=classes).eval(), noise(1, 3, 16, 16)
    rgb = np.zeros((16, 16, 3), np.float32)
    explorer = explore(model, [model.features[2]], x, rgb).explorer
    with torch.no_grad():
        logits = model(x)[0]
    top = int(logits.argmax())
    assert len(explorer.state.names) == classes and explorer.state.class_id == top
    from helpers.widgets import percent

    value = f"score = {float(logits[0]):.3g}" if classes == 1 else \
        f"probability {percent(torch.softmax(logits, 0)[top].item())}"
    assert f"{top} · class {top}</b>: {value}" in explorer.status.value
    if classes == 10:
        with_target = explore(model, [model.features[2]], x, rgb, class_id=lambda output: output[3] - output[4])
        state = with_target.explorer.state
        assert state.class_ids[0] == TARGET and state.class_id == TARGET
        assert np.abs(with_target.explorer.maps.heatmap_for(TARGET) -
                      gradcam(model, [model.features[2]], lambda output: output[3] - output[4], x)).max() < AGREE


def test_sigmoid_is_chosen_for_a_model_that_says_it_is_multi_label():
    class Config:                                   # what a Hugging Face config says (tests/test_hugging_face.py
        problem_type = "multi_label_classification"     # runs a real one)
        id2label = {0: "cat", 1: "dog"}

        def to_dict(self):
            return {}

    model = SmallCNN(classes=2)
    model.config = Config()
    assert probability_of(model, 2).kind == "sigmoid" and not probability_of(model, 2).assumed
    assert class_names_of(model, 2) == ("cat", "dog")
    assert probability_of(None, 1000).kind == "softmax" and not probability_of(None, 1000).assumed
    with pytest.raises(ValueError, match='"softmax", "sigmoid" or None'):
        probability_of(model, 2, "softmax2")


def test_viz_gradcam_on_a_batch_says_how_to_show_one_and_how_to_map_all(capsys):
    model, x = SmallCNN().eval(), noise(8, 3, 16, 16)
    rgb_image = np.zeros((16, 16, 3), np.float32)
    with pytest.raises(ValueError, match="viz_gradcam shows one image, but input_tensor holds 8") as error:
        viz_gradcam(model, [model.features[2]], 3, x, rgb_image, show=False)
    advice = run_advice(str(error.value), {"model": model, "target_layers": [model.features[2]], "class_id": 3,
                                           "input_tensor": x, "rgb_image": rgb_image, "viz_gradcam": viz_gradcam,
                                           "compute_cams": compute_cams})
    assert advice["maps"].shape == (8, 16, 16) and advice["logits"].shape == (8, 10)
    assert "Target class: class 3" in capsys.readouterr().out


def test_class_scores_keeps_its_home_in_architectures():
    from helpers.architectures import class_scores as old_home

    assert old_home is class_scores
