import datetime
import html
import gc
import io
import os
import re
import weakref

import ipywidgets
import numpy as np
import pytest
import torch
from PIL import Image

from helpers import LESSON_CLASSES, explore, fetch, gradcam, load_image
from helpers.cam import METHODS
from helpers.explorer_graphs import KEPT, MAX_KEPT_GRAPHS as KEPT_BOUND
from helpers.viz import DEFAULT_CMAP

NOW = datetime.datetime.now(datetime.timezone.utc)


def walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from walk(child)


def values(dropdown):
    return [o[1] if isinstance(o, tuple) else o for o in dropdown.options]


def class_choice(widget):
    return next(c for c in walk(widget) if isinstance(c, ipywidgets.Dropdown) and set(LESSON_CLASSES) <= set(values(c)))


def heatmap(widget):
    return next(c for c in walk(widget) if isinstance(c, ipywidgets.Image))


@pytest.fixture
def resnet_explorer(random_resnet, both):
    widget = explore(random_resnet, [random_resnet.layer4], *both)
    return widget, widget.explorer


def test_the_class_choice_lists_top5_then_the_lessons_classes(resnet_explorer, random_resnet, both):
    widget, _ = resnet_explorer
    choice = class_choice(widget)
    with torch.no_grad():
        top5 = torch.topk(random_resnet(both[0])[0], 5).indices.tolist()
    assert values(choice)[:5] == top5
    assert values(choice)[5:] == [c for c in LESSON_CLASSES if c not in top5]
    assert all(type(v) is int for v in values(choice))
    labels = dict((v, k) for k, v in choice.options)
    assert labels[245] == "245 · French bulldog" and labels[919] == "919 · street sign"
    assert choice.value == top5[0]


def test_a_class_change_redraws_synchronously_and_matches_gradcam(resnet_explorer, random_resnet, both):
    widget, explorer = resnet_explorer
    image = heatmap(widget)
    before = image.value
    class_choice(widget).value = 281
    assert image.value != before and image.value[:2] == b"\xff\xd8"        # a new JPEG already
    assert "281 · tabby</b>: probability " in explorer.status.value and "%" in explorer.status.value
    for layer, grid in (("layer4", "7×7"), ("layer3", "14×14")):
        explorer.layer_choice.value = layer
        expected = gradcam(random_resnet, [getattr(random_resnet, layer)], 281, both[0])
        assert np.abs(explorer.maps.heatmap_for(281) - expected).max() <= 1e-4
        assert f"at {layer} ({grid} grid)" in explorer.status.value          # episode 5 asks learners to read it


def test_every_method_matches_helpers_on_the_stand_in(stand_in, both):
    widget = explore(stand_in, [stand_in.blocks[-1]], *both)
    explorer = widget.explorer
    assert list(explorer.method_choice.options) == ["GradCAM", "GradCAM++", "HiResCAM", "LayerCAM", "EigenCAM"]
    assert "ScoreCAM" not in explorer.method_choice.options
    assert [name for _, name in explorer.layer_choice.options] == ["blocks[6]", "blocks[5]", "blocks[4]", "blocks[3]"]
    for method in METHODS:
        explorer.method_choice.value = method
        expected = gradcam(stand_in, [stand_in.blocks[-1]], 285, both[0], method=method)
        assert np.abs(explorer.maps.heatmap_for(285) - expected).max() <= 1e-4


def test_search_adds_and_selects_any_class(resnet_explorer):
    widget, explorer = resnet_explorer
    assert len(explorer.search.options) == 1000
    explorer.search.value = "1 · goldfish"
    assert class_choice(widget).value == 1 and 1 in values(class_choice(widget))
    assert "1 · goldfish" in explorer.status.value
    explorer.search.value = "Siberian husky"           # a unique name typed in full
    assert class_choice(widget).value == 250


def test_opacity_colours_and_layers(resnet_explorer):
    widget, explorer = resnet_explorer
    image = heatmap(widget)
    assert {"cividis", "viridis"} <= set(explorer.cmap_choice.options)
    assert list(explorer.layer_choice.options) == [("layer4 (deepest: coarse)", "layer4"),
                                                   ("layer3 (earlier: finer)", "layer3"),
                                                   ("layer2 (earlier: finer)", "layer2"),
                                                   ("layer1 (earliest: finest)", "layer1")]
    seen = {image.value}
    explorer.alpha.value = 0.0
    photo_only = image.value
    explorer.cmap_choice.value = "cividis"
    assert image.value == photo_only                    # opacity 0: the colours do not show
    explorer.alpha.value = 0.9
    seen.add(image.value)
    explorer.layer_choice.value = "layer2"
    seen.add(image.value)
    assert len(seen) == 3


def test_the_lesson_images_and_an_upload(resnet_explorer):
    widget, explorer = resnet_explorer
    assert {"both.png", "dog_cat.jfif", "dogs.png", "horses.jpg"} <= set(explorer.image_choice.options)
    explorer.image_choice.value = "horses.jpg"
    assert Image.open(io.BytesIO(heatmap(widget).value)).size == (340, 224)
    buffer = io.BytesIO()
    Image.new("RGB", (120, 80), (0, 128, 255)).save(buffer, format="PNG")
    explorer.upload.value = ({"name": "mine.png", "type": "image/png", "size": 3, "content": memoryview(buffer.getvalue()), "last_modified": NOW},)
    assert explorer.image_choice.value == "upload 1: mine.png" and explorer.message.value == ""
    assert explorer.upload.value == ()                       # the bytes are not kept twice
    assert Image.open(io.BytesIO(heatmap(widget).value)).size == (336, 224)
    first = heatmap(widget).value
    buffer = io.BytesIO()
    Image.new("RGB", (80, 120), (255, 200, 0)).save(buffer, format="PNG")   # same name, new picture
    explorer.upload.value = ({"name": "mine.png", "type": "image/png", "size": 3, "content": memoryview(buffer.getvalue()), "last_modified": NOW},)
    assert explorer.image_choice.value == "upload 2: mine.png"
    assert Image.open(io.BytesIO(heatmap(widget).value)).size == (224, 336) and heatmap(widget).value != first


@pytest.mark.parametrize("content", [b"this is not an image", "bomb"])
def test_a_bad_upload_keeps_everything(resnet_explorer, content):
    widget, explorer = resnet_explorer
    class_choice(widget).value = 245
    before = (heatmap(widget).value, explorer.image_choice.value, class_choice(widget).value, explorer.image_choice.options)
    if content == "bomb":
        buffer = io.BytesIO()
        Image.new("1", (9000, 9000)).save(buffer, format="PNG")
        content = buffer.getvalue()
    explorer.upload.value = ({"name": "bad.png", "type": "image/png", "size": len(content), "content": memoryview(content), "last_modified": NOW},)
    assert "⚠" in explorer.message.value and not any("bad.png" in o for o in explorer.image_choice.options)
    if content.startswith(b"this"):
        assert "That file is not an image we can open (bad.png). Try a JPEG or PNG." in explorer.message.value
    else:
        assert "bad.png" in explorer.message.value and "image bytes" not in explorer.message.value
    after = (heatmap(widget).value, explorer.image_choice.value, class_choice(widget).value, explorer.image_choice.options)
    assert after == before
    class_choice(widget).value = 281                    # and it still works
    assert explorer.message.value == "" and heatmap(widget).value != before[0]


def test_a_failing_layer_shows_a_message_and_keeps_the_picture(resnet_explorer, random_resnet):
    widget, explorer = resnet_explorer
    explorer.state.layers["fc (not a feature map)"] = weakref.ref(random_resnet.fc)
    explorer.layer_choice.options = list(explorer.state.layers)
    explorer.layer_choice.value = "layer4"
    before = heatmap(widget).value
    explorer.layer_choice.value = "fc (not a feature map)"
    assert "target layer fc gives [1, 1000]" in explorer.message.value      # the shape it saw, named
    assert explorer.layer_choice.value == "layer4" and heatmap(widget).value == before
    assert all(not m._forward_hooks for m in random_resnet.modules())


def _rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def test_an_older_explorer_keeps_answering_after_newer_ones(random_resnet, stand_in, both):
    first = explore(random_resnet, [random_resnet.layer4], *both)
    second = explore(random_resnet, [random_resnet.layer4], *both)          # same model, as in episode 5
    others = [explore(stand_in, [stand_in.blocks[-1]], *both) for _ in range(KEPT_BOUND + 1)]
    assert not first.explorer.maps.has_graph()                                  # its memory was given back...
    for widget, class_id in ((first, 281), (second, 245), (others[0], 281)):
        before = heatmap(widget).value
        class_choice(widget).value = class_id                              # ...and it still answers
        assert heatmap(widget).value != before and widget.explorer.message.value == ""
        assert f"{class_id} · " in widget.explorer.status.value
    expected = gradcam(random_resnet, [random_resnet.layer4], 281, both[0])
    class_choice(first).value = 281
    assert np.abs(first.explorer.maps.heatmap_for(281) - expected).max() <= 1e-4
    assert "replaced" not in first.explorer.message.value


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc")
def test_running_load_model_and_explore_again_keeps_memory_bounded(both):
    from torchvision.models import resnet18

    x, rgb = both[0][..., :112, :112], both[1][:112, :112]       # a small image keeps this test fast
    widgets, rss = [], []
    for run in range(7):                          # model = load_model(); explore(...); pick layer1
        torch.manual_seed(run)
        model = resnet18(weights=None).eval()     # 45 MB of weights each time
        widgets.append(explore(model, [model.layer4], x, rgb))
        widgets[-1].explorer.layer_choice.value = "layer1"
        del model
        gc.collect()
        rss.append(_rss_mb())
        assert KEPT.live() <= KEPT_BOUND
    assert sum(w.explorer.maps.has_graph() for w in widgets) == KEPT_BOUND
    assert rss[-1] - rss[KEPT_BOUND] < 45, rss   # the models of explorers without a graph were freed
    assert all(not m._forward_hooks and not m._backward_hooks for m in widgets[-1].explorer.maps._model.modules())


def test_only_the_last_uploads_are_kept(resnet_explorer):
    widget, explorer = resnet_explorer
    for number in range(1, 7):
        buffer = io.BytesIO()
        Image.new("RGB", (100 + number, 80), (40 * number, 0, 0)).save(buffer, format="PNG")
        explorer.upload.value = ({"name": f"p{number}.png", "type": "image/png", "size": 3,
                                  "content": memoryview(buffer.getvalue()), "last_modified": NOW},)
        assert explorer.image_choice.value == f"upload {number}: p{number}.png"
    uploads = [o for o in explorer.image_choice.options if o.startswith("upload")]
    assert uploads == [f"upload {n}: p{n}.png" for n in (4, 5, 6)]
    assert sorted(k for k in explorer.state.images if k.startswith("upload")) == uploads
    explorer.image_choice.value = "upload 4: p4.png"
    assert Image.open(io.BytesIO(heatmap(widget).value)).size == (104 * 224 // 80, 224)


def test_typing_a_name_and_enter_picks_the_first_match(resnet_explorer):
    widget, explorer = resnet_explorer
    explorer.search.value = "zebra"
    assert class_choice(widget).value == 340 and "340 · zebra" in explorer.status.value
    assert explorer.search.value == ""                       # emptied, so the same entry can be chosen again
    explorer.search.value = "terrier"                        # many match: the first in the label file
    from helpers import find_classes
    assert class_choice(widget).value == find_classes("terrier")[0]
    before = heatmap(widget).value
    explorer.search.value = "no such animal"
    assert "No class name contains 'no such animal'" in html.unescape(explorer.message.value)
    assert heatmap(widget).value == before and class_choice(widget).value == find_classes("terrier")[0]


@pytest.mark.parametrize("text", ["1000 · nothing", "1000", "-3"])
def test_an_out_of_range_class_from_code_gives_a_message_and_later_changes_work(resnet_explorer, text):
    widget, explorer = resnet_explorer
    explorer.search.value = text
    assert "⚠" in explorer.message.value
    assert 1000 not in values(class_choice(widget))
    before = heatmap(widget).value
    explorer.image_choice.value = "horses.jpg"
    assert explorer.message.value == "" and heatmap(widget).value != before
    with pytest.raises(Exception):
        class_choice(widget).value = 1000                    # not an option: the Dropdown refuses it


def test_a_bad_method_colour_map_or_opacity_is_named(random_resnet, both):
    with pytest.raises(ValueError, match="'ScoreCAM'.*GradCAM, GradCAM\\+\\+, HiResCAM, LayerCAM, EigenCAM"):
        explore(random_resnet, [random_resnet.layer4], *both, method="ScoreCAM")
    with pytest.raises(ValueError, match="'rainbow'.*inferno"):
        explore(random_resnet, [random_resnet.layer4], *both, cmap="rainbow")
    with pytest.raises(ValueError, match="opacity"):
        explore(random_resnet, [random_resnet.layer4], *both, alpha=2)


def test_the_default_colours_are_inferno_and_jet_stays(resnet_explorer):
    _, explorer = resnet_explorer
    assert explorer.cmap_choice.value == DEFAULT_CMAP == "inferno" and "jet" in explorer.cmap_choice.options


def test_explore_works_inside_inference_mode(random_resnet, both):
    outside = explore(random_resnet, [random_resnet.layer4], *both, class_id=281).explorer.maps.heatmap_for(281)
    with torch.inference_mode():
        x = both[0].clone()                                   # an inference tensor
        widget = explore(random_resnet, [random_resnet.layer4], x, both[1], class_id=281)
        inside = widget.explorer.maps.heatmap_for(281)
    assert np.abs(inside - outside).max() <= 1e-5 and inside.max() == pytest.approx(1.0, abs=1e-4)
    before = heatmap(widget).value
    class_choice(widget).value = 245                        # and it keeps answering afterwards
    assert heatmap(widget).value != before and widget.explorer.message.value == ""


def test_the_first_image_is_named_after_its_file(resnet_explorer, random_resnet, both):
    widget, explorer = resnet_explorer
    assert explorer.image_choice.value == "both.png"
    assert list(explorer.image_choice.options).count("both.png") == 1
    own = explore(random_resnet, [random_resnet.layer4], both[0], both[1][:, ::-1].copy())
    assert own.explorer.image_choice.value == "(your image)"
    named = explore(random_resnet, [random_resnet.layer4], *both, image_name="my dog")
    assert named.explorer.image_choice.value == "my dog"
    assert "Upload" == explorer.upload.description and "photo" in explorer.upload.tooltip


def test_a_starting_class_is_selected_even_outside_the_list(random_resnet, both):
    widget = explore(random_resnet, [random_resnet.layer4], *both, class_id=1)
    assert class_choice(widget).value == 1 and "1 · goldfish" in widget.explorer.status.value
    with pytest.raises(ValueError, match=r"0\.\.999"):
        explore(random_resnet, [random_resnet.layer4], *both, class_id=1000)
    class_choice(widget).value = 245
    assert "245 · French bulldog" in widget.explorer.status.value


def test_the_class_list_follows_the_image_and_keeps_searched_classes(resnet_explorer, random_resnet):
    widget, explorer = resnet_explorer
    explorer.search.value = "1 · goldfish"
    explorer.image_choice.value = "horses.jpg"
    x, _ = load_image(fetch("horses.jpg"))
    with torch.no_grad():
        top5 = torch.topk(random_resnet(x)[0], 5).indices.tolist()
    expected = list(dict.fromkeys(top5 + list(LESSON_CLASSES) + [1]))
    assert values(class_choice(widget)) == expected          # no stale top-5 of both.png
    assert class_choice(widget).value == 1                   # the class shown stays selected


# --- hostile-tester regressions -------------------------------------------------------------

@pytest.fixture(scope="module")
def ten_classes():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = resnet18(weights=None, num_classes=10).eval()
    return model, torch.randn(1, 3, 64, 64), np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)


def test_class_ids_are_checked_against_the_models_own_classes(ten_classes):
    model, x, rgb = ten_classes
    with pytest.raises(ValueError, match="has 10 classes"):
        explore(model, [model.layer4], x, rgb, class_id=500)
    explorer = explore(model, [model.layer4], x, rgb).explorer
    explorer.search.value = "zebra"                         # ImageNet's 340: not one of this model's classes
    assert "No class name of this model contains 'zebra'; its 10 classes are class 0, class 1" in \
        html.unescape(explorer.message.value)
    explorer.search.value = "340"
    assert "has 10 classes" in html.unescape(explorer.message.value)
    assert max(values(explorer.class_choice)) < 10


def test_a_bare_layer_an_empty_list_and_a_numpy_opacity(ten_classes):
    model, x, rgb = ten_classes
    explorer = explore(model, model.layer4, x, rgb, alpha=np.float32(0.25)).explorer
    assert explorer.layer_choice.value == "layer4" and explorer.alpha.value == 0.25
    with pytest.raises(TypeError, match="non-empty list of layers"):
        explore(model, [], x, rgb)


def test_the_search_box_empties_so_the_same_entry_fires_again(resnet_explorer):
    widget, explorer = resnet_explorer
    explorer.search.value = "340 · zebra"
    assert class_choice(widget).value == 340 and explorer.search.value == ""
    class_choice(widget).value = 245
    explorer.search.value = "340 · zebra"                  # the same entry again
    assert class_choice(widget).value == 340
    explorer.search.value = "²"                              # str.isdigit() is True, int() fails
    assert "⚠" in explorer.message.value and "ValueError" not in explorer.message.value
    assert class_choice(widget).value == 340


def test_a_training_step_after_explore_gives_maps_of_the_new_weights_not_an_error():
    # The kept graph holds the old weights: an optimizer's step (or load_state_dict) changes them in
    # place, and the next class's gradient through that graph failed ("modified by an inplace
    # operation") for every class until another image or layer was chosen.
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model, x = resnet18(weights=None, num_classes=10).eval(), torch.randn(1, 3, 64, 64)
    explorer = explore(model, [model.layer4], x, np.zeros((64, 64, 3), np.float32)).explorer
    first, other = explorer.state.class_id, explorer.state.class_ids[1]
    before = explorer.maps.heatmap_for(first)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    optimizer.step()
    explorer.class_choice.value = other
    assert explorer.message.value == "" and explorer.state.class_id == other
    assert np.abs(explorer.maps.heatmap_for(other) - gradcam(model, [model.layer4], other, x)).max() < 1e-5
    explorer.class_choice.value = first                     # a map made before the step is not shown again
    assert np.abs(explorer.maps.heatmap_for(first) - gradcam(model, [model.layer4], first, x)).max() < 1e-5
    assert np.abs(explorer.maps.heatmap_for(first) - before).max() > 1e-3


def test_probabilities_read_as_percentages_and_the_colour_bar_follows_the_colours(resnet_explorer, random_resnet,
                                                                                 both):
    from helpers.viz import colormap_table
    from helpers.widgets import percent

    widget, explorer = resnet_explorer
    with torch.no_grad():
        probabilities = torch.softmax(random_resnet(both[0])[0], 0)
    class_choice(widget).value = 281
    assert f"281 · tabby</b>: probability {percent(probabilities[281])} " in explorer.status.value
    assert "p = " not in explorer.status.value and "e-0" not in explorer.status.value
    assert [percent(p) for p in (0.5, 0.0226, 0.000226, 1e-7)] == ["50%", "2.3%", "0.02%", "under 0.01%"]
    assert explorer.colour_bar in widget.children
    for cmap in ("inferno", "cividis"):
        explorer.cmap_choice.value = cmap
        first, last = (colormap_table(cmap)[i] for i in (0, 255))
        ramp = re.search(r"linear-gradient\(to right, (#[0-9a-f]{6}).*(#[0-9a-f]{6})\)", explorer.colour_bar.value)
        assert ramp and ramp[1] == "#%02x%02x%02x" % tuple(round(255 * c) for c in first)
        assert ramp[2] == "#%02x%02x%02x" % tuple(round(255 * c) for c in last)
        assert "0: no evidence" in explorer.colour_bar.value and "1: the strongest" in explorer.colour_bar.value
