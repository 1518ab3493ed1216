import datetime
import io
import os

import ipywidgets
import numpy as np
import pytest
import torch
from PIL import Image

from helpers import LESSON_CLASSES, explore, fetch, gradcam, load_image
from helpers.cam import METHODS

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
    assert "281 · tabby" in explorer.status.value and "p = " in explorer.status.value
    for layer in ("layer4", "layer3"):
        explorer.layer_choice.value = layer
        expected = gradcam(random_resnet, [getattr(random_resnet, layer)], 281, both[0])
        assert np.abs(explorer.heatmap_for(281) - expected).max() <= 1e-4


def test_every_method_matches_helpers_on_the_stand_in(stand_in, both):
    widget = explore(stand_in, [stand_in.blocks[-1]], *both)
    explorer = widget.explorer
    assert list(explorer.method_choice.options) == ["GradCAM", "GradCAM++", "HiResCAM", "LayerCAM", "EigenCAM"]
    assert "ScoreCAM" not in explorer.method_choice.options
    assert list(explorer.layer_choice.options) == ["blocks[6]", "blocks[5]", "blocks[4]", "blocks[3]"]
    for method in METHODS:
        explorer.method_choice.value = method
        expected = gradcam(stand_in, [stand_in.blocks[-1]], 285, both[0], method=method)
        assert np.abs(explorer.heatmap_for(285) - expected).max() <= 1e-4


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
    assert list(explorer.layer_choice.options) == ["layer4", "layer3", "layer2", "layer1"]
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
    after = (heatmap(widget).value, explorer.image_choice.value, class_choice(widget).value, explorer.image_choice.options)
    assert after == before
    class_choice(widget).value = 281                    # and it still works
    assert explorer.message.value == "" and heatmap(widget).value != before[0]


def test_a_failing_layer_shows_a_message_and_keeps_the_picture(resnet_explorer, random_resnet):
    widget, explorer = resnet_explorer
    explorer.layers["fc (not a feature map)"] = random_resnet.fc
    explorer.layer_choice.options = list(explorer.layers)
    explorer.layer_choice.value = "layer4"
    before = heatmap(widget).value
    explorer.layer_choice.value = "fc (not a feature map)"
    assert "not a feature map" in explorer.message.value
    assert explorer.layer_choice.value == "layer4" and heatmap(widget).value == before
    assert all(not m._forward_hooks for m in random_resnet.modules())


def _rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc")
def test_running_the_cell_twenty_times_piles_up_nothing(random_resnet, both):
    first = explore(random_resnet, [random_resnet.layer4], *both)
    first.explorer.layer_choice.value = "layer1"        # the largest kept graph
    start = _rss_mb()
    widgets = [explore(random_resnet, [random_resnet.layer4], *both) for _ in range(20)]
    assert first.explorer.released and first.explorer._forward is None
    assert all(w.explorer.released for w in widgets[:-1]) and not widgets[-1].explorer.released
    assert all(not m._forward_hooks and not m._backward_hooks for m in random_resnet.modules())
    assert _rss_mb() - start < 150


def test_a_starting_class_is_selected_even_outside_the_list(random_resnet, both):
    widget = explore(random_resnet, [random_resnet.layer4], *both, class_id=1)
    assert class_choice(widget).value == 1 and "1 · goldfish" in widget.explorer.status.value
    with pytest.raises(ValueError, match=r"0\.\.999"):
        explore(random_resnet, [random_resnet.layer4], *both, class_id=1000)
    assert not widget.explorer.released                 # a failed new explorer leaves the old one working
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
