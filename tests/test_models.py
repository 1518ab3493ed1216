import time

import pytest
import torch

import helpers.downloads as fetch_module
import helpers.models as models
from helpers import default_target_layers, layer_choices, load_model, LABELS


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torch cache, so the ResNet-50 weights are not there."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(models, "_NOTICED", set())   # a fresh session: the notice not shown yet
    return tmp_path / "torch"


def test_the_stand_in_loads_all_296_tensors_and_predicts_the_dog(stand_in, both):
    assert stand_in.lesson_name == "efficientnet_lite0" and not stand_in.training
    assert len(stand_in.state_dict()) == 296
    with torch.no_grad():
        probabilities = torch.softmax(stand_in(both[0])[0], 0)
    top2 = [LABELS[i] for i in probabilities.topk(2).indices]
    assert top2 == ["bull mastiff", "boxer"]
    assert 0.3 < float(probabilities.max()) < 0.5


def test_default_target_layers(stand_in, random_resnet):
    assert default_target_layers(random_resnet)[0] is random_resnet.layer4
    assert default_target_layers(stand_in)[0] is stand_in.blocks[-1]
    assert list(layer_choices(random_resnet)) == ["layer4", "layer3", "layer2", "layer1"]
    assert list(layer_choices(stand_in)) == ["blocks[6]", "blocks[5]", "blocks[4]", "blocks[3]"]
    with pytest.raises(ValueError, match="target_layers"):
        layer_choices(torch.nn.Linear(2, 2))


def test_lesson_model_variable_picks_the_model(monkeypatch):
    monkeypatch.setenv("LESSON_MODEL", "efficientnet_lite0")
    assert load_model().lesson_name == "efficientnet_lite0"
    with pytest.raises(ValueError, match="resnet50, efficientnet_lite0"):
        load_model("vgg16")


def test_offline_switches_to_the_stand_in_with_a_notice(torch_home, capsys):
    model = load_model("resnet50")
    out = capsys.readouterr().out
    assert model.lesson_name == "efficientnet_lite0"
    assert "NOTICE" in out and "stand-in" in out and "python -m helpers.setup" in out
    assert len(out.strip().splitlines()) == 1


def test_unreachable_server_switches_at_once(torch_home, online, monkeypatch, capsys):
    monkeypatch.delenv("LESSON_MODEL", raising=False)       # None means ResNet-50
    real = fetch_module.manifest()
    closed_port = {n: dict(e, url="http://127.0.0.1:9/resnet50-0676ba61.pth") for n, e in real.items()}
    monkeypatch.setattr(fetch_module, "manifest", lambda: closed_port)
    started = time.monotonic()
    model = load_model()
    assert time.monotonic() - started < 30
    assert model.lesson_name == "efficientnet_lite0"
    assert "(no internet: NewConnectionError for 127.0.0.1)" in capsys.readouterr().out


def _serve_weights(http_server, monkeypatch, prefix=None):
    folder, base = http_server
    torch.manual_seed(1)
    from torchvision.models import resnet50

    source = resnet50(weights=None)
    torch.save(source.state_dict(), folder / "resnet50-0676ba61.pth")
    real = fetch_module.manifest()
    entry = dict(real["resnet50-0676ba61.pth"], url=f"{base}/resnet50-0676ba61.pth")
    if prefix is not None:
        entry["sha256_prefix"] = prefix(folder / "resnet50-0676ba61.pth")
    monkeypatch.setattr(fetch_module, "manifest", lambda: {**real, "resnet50-0676ba61.pth": entry})
    return source


def test_weights_are_downloaded_checked_and_cached(torch_home, http_server, online, monkeypatch):
    source = _serve_weights(http_server, monkeypatch, prefix=lambda p: fetch_module.sha256_of(p)[:8])
    model = load_model("resnet50")
    assert model.lesson_name == "resnet50"
    assert torch.equal(model.fc.weight, source.fc.weight)
    assert models.resnet50_weights_path().is_file()
    assert str(torch_home) in str(models.resnet50_weights_path())


def test_weights_with_the_wrong_hash_are_refused(torch_home, http_server, online, monkeypatch, capsys):
    _serve_weights(http_server, monkeypatch)             # the real prefix 0676ba61 will not match
    model = load_model("resnet50")
    assert model.lesson_name == "efficientnet_lite0"
    assert "sha256" in capsys.readouterr().out
    assert not models.resnet50_weights_path().exists()


def test_cached_weights_are_used_without_any_download(torch_home):
    torch.manual_seed(2)
    from torchvision.models import resnet50

    source = resnet50(weights=None)
    path = models.resnet50_weights_path()
    path.parent.mkdir(parents=True)
    torch.save(source.state_dict(), path)
    model = load_model("resnet50")                       # LESSON_OFFLINE is set: cache only
    assert model.lesson_name == "resnet50" and not model.training
    assert torch.equal(model.conv1.weight, source.conv1.weight)
