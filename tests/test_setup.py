import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_setup(env_changes, *args):
    env = dict(os.environ, **env_changes)
    return subprocess.run([sys.executable, "-m", "helpers.setup", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


def test_setup_fills_the_cache_from_the_mirror_and_writes_a_usb_mirror(tmp_path, mirror):
    out = tmp_path / "stick"
    result = run_setup({"LESSON_CACHE": str(tmp_path / "cache"), "TORCH_HOME": str(tmp_path / "torch")},
                       "--mirror-out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("both.png", "dog_cat.jfif", "dogs.png", "horses.jpg"):
        assert (tmp_path / "cache" / name).read_bytes() == (mirror / name).read_bytes()
        assert (out / name).read_bytes() == (mirror / name).read_bytes()
    assert "skipped  ResNet-50 weights: offline" in result.stdout
    assert "Set-up done." in result.stdout


def test_setup_without_any_source_fails_and_says_what_to_do(tmp_path):
    env = {"LESSON_CACHE": str(tmp_path / "cache"), "LESSON_DATA_MIRROR": "", "TORCH_HOME": str(tmp_path / "t")}
    result = run_setup(env, "--no-weights")
    assert result.returncode == 1
    assert result.stdout.count("MISSING") == 4
    assert "What to do" in result.stdout


def test_the_front_door_runs_with_only_the_standard_library():
    result = subprocess.run([sys.executable, "-I", str(ROOT / "lesson.py"), "help"], capture_output=True, text=True)
    assert result.returncode == 0 and "python lesson.py lab" in result.stdout
    makefile = (ROOT / "Makefile").read_text()
    for target in ("lab", "test"):
        assert f"lesson.py {target}" in makefile


def test_weights_from_a_mirror_are_checked_then_copied_into_torchs_cache(tmp_path, monkeypatch, capsys):
    import torch

    import helpers.downloads as downloads
    import helpers.setup as setup_module
    from helpers.downloads import manifest, sha256_of
    from helpers.models import resnet50_weights_path

    stick = tmp_path / "stick"
    stick.mkdir()
    torch.save({"fc.bias": torch.zeros(3)}, stick / "resnet50-0676ba61.pth")
    monkeypatch.setenv("LESSON_DATA_MIRROR", str(stick))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert setup_module.fetch_weights(progress=False) is None          # wrong hash: refused
    assert "has the wrong sha256" in capsys.readouterr().out and not resnet50_weights_path().exists()
    real = manifest()
    patched = {**real, "resnet50-0676ba61.pth": dict(real["resnet50-0676ba61.pth"],
                                                     sha256_prefix=sha256_of(stick / "resnet50-0676ba61.pth")[:8])}
    monkeypatch.setattr(downloads, "manifest", lambda: patched)
    assert setup_module.fetch_weights(progress=False) == resnet50_weights_path()
    assert resnet50_weights_path().read_bytes() == (stick / "resnet50-0676ba61.pth").read_bytes()


def test_lab_starts_jupyterlab_without_the_news_popup(tmp_path, monkeypatch):
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("lesson", ROOT / "lesson.py")
    lesson = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lesson)
    monkeypatch.setattr(lesson, "VENV", tmp_path / "venv")
    lesson.quiet_jupyterlab()
    overrides = json.loads((tmp_path / "venv" / "share" / "jupyter" / "lab" / "settings" / "overrides.json").read_text())
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
