from importlib import metadata

import helpers.check as check


def test_the_checker_reports_every_line(capsys):
    from helpers import fetch, lesson_images

    for name in lesson_images():                        # fill this session's cache from the mirror
        fetch(name)
    ready = check.run_checks()
    out = capsys.readouterr().out
    for name in ("Python", "torch", "torchvision", "grad-cam", "ipywidgets", "JupyterLab widget extension",
                 "ResNet-50 weights", "Lesson images", "Offline stand-in model"):
        assert f"] {name}: " in out, name
    assert ready and "Ready for the lesson." in out


def test_a_missing_package_fails_and_says_what_to_do(monkeypatch, capsys):
    real = metadata.version

    def version(name):
        if name == "grad-cam":
            raise metadata.PackageNotFoundError(name)
        return "1.0" if name == "ipywidgets" else real(name)

    monkeypatch.setattr(check.metadata, "version", version)
    assert check.run_checks() is False
    out = capsys.readouterr().out
    assert "[FAIL] grad-cam: not installed" in out and "pip install 'grad-cam" in out
    assert "[FAIL] ipywidgets: 1.0, older than 8.1" in out
    assert "Not ready yet" in out


def test_missing_images_fail_but_missing_weights_only_note(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LESSON_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert check.run_checks() is False
    out = capsys.readouterr().out
    assert "[FAIL] Lesson images: not cached: both.png" in out and "python -m helpers.setup" in out
    assert "[note] ResNet-50 weights: not cached" in out and "stand-in" in out


def test_a_disabled_widget_extension_is_noticed(tmp_path, monkeypatch):
    share = tmp_path / "share" / "jupyter"
    (share / "labextensions" / "@jupyter-widgets" / "jupyterlab-manager").mkdir(parents=True)
    (share / "labextensions" / "@jupyter-widgets" / "jupyterlab-manager" / "package.json").write_text("{}")
    config = tmp_path / "etc" / "jupyter" / "labconfig"
    config.mkdir(parents=True)
    (config / "page_config.json").write_text('{"disabledExtensions": {"@jupyter-widgets/jupyterlab-manager": true}}')
    import jupyter_core.paths

    monkeypatch.setattr(jupyter_core.paths, "jupyter_path", lambda *a: [str(share)])
    result = check.check_widget_extension()
    assert not result.ok and "disabled" in result.detail and "labextension enable" in result.fix
    (config / "page_config.json").write_text("{}")
    assert check.check_widget_extension().ok
