import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path


import helpers.check as check

ROOT = Path(__file__).resolve().parent.parent


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
    assert "[FAIL] grad-cam: not installed" in out and 'python -m pip install "grad-cam>=1.5.4,<1.6"' in out
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


# --- a Python without torch (the offline route's trap: running the checker outside .venv) ----------


def python_without(module: str, tmp_path: Path) -> str:
    """A Python that cannot import ``module``: the system's, or else a fresh venv without packages."""
    for candidate in ("/usr/bin/python3", shutil.which("python3"), shutil.which("python")):
        if not candidate or not Path(candidate).exists():
            continue
        probe = subprocess.run([candidate, "-I", "-c", f"import {module}"], capture_output=True, timeout=60)
        if probe.returncode != 0 and probe.stderr:
            return candidate
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True, timeout=120)
    bare = tmp_path / "bare" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    assert subprocess.run([str(bare), "-c", f"import {module}"], capture_output=True).returncode != 0
    return str(bare)


def run_module(python: str, module: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m module`` with only the checkout on the path (not .venv's site-packages), from elsewhere."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "LESSON_OFFLINE": "1",
           "LESSON_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path), "PYTHONNOUSERSITE": "1"}
    return subprocess.run([python, "-m", module, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)


def test_import_helpers_is_light_but_every_name_is_there():
    code = ("import sys, helpers; light = 'torch' not in sys.modules; "
            "from helpers import gradcam, LABELS, load_model, explore; "
            "missing = [n for n in helpers.__all__ if not hasattr(helpers, n)]; "
            "print(light, len(LABELS), missing, helpers.cam.gradcam is gradcam)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["True", "1000", "[]", "True"], result.stderr


def test_the_checker_names_a_missing_torch_without_a_traceback(tmp_path):
    python = python_without("torch", tmp_path)
    result = run_module(python, "helpers.check", tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in out and "Error" not in result.stderr
    fail_torch = [line for line in out.splitlines() if line.startswith("[FAIL] torch: not installed")]
    assert fail_torch, out
    assert 'pip install "torch>=2.2,<3" "torchvision>=0.17,<1"' in out
    assert "[FAIL] captum: not installed" in out and "[FAIL] scipy: not installed" in out
    assert "[note] ResNet-50 weights: cannot check: torch is not installed" in out
    assert "Not ready yet" in out and ".venv/bin/python -m helpers.check" in out


def test_the_setup_names_a_missing_torch_without_a_traceback(tmp_path):
    python = python_without("torch", tmp_path)
    result = run_module(python, "helpers.setup", tmp_path, "--no-weights")
    out = result.stdout + result.stderr
    assert result.returncode == 1
    assert "Traceback" not in out and "[FAIL] torch: not installed" in out, out
    assert ".venv/bin/python -m helpers.setup" in out


def test_the_checker_checks_every_package_with_its_version(capsys):
    from helpers import fetch, lesson_images

    for name in lesson_images():
        fetch(name)
    check.run_checks()
    out = capsys.readouterr().out
    for name, _, _ in check.PACKAGES:
        line = next(line for line in out.splitlines() if line.startswith(f"[OK  ] {name}: "))
        assert line.split(": ", 1)[1].split()[0] == metadata.version(name), line


def test_another_opencv_wheel_also_provides_cv2(monkeypatch):
    real = metadata.version

    def version(name):
        if name == "opencv-python-headless":
            raise metadata.PackageNotFoundError(name)
        return "4.9.0" if name == "opencv-python" else real(name)

    monkeypatch.setattr(check.metadata, "version", version)
    result = check.check_package("opencv-python-headless", "4.8", "fix")
    assert result.ok and result.detail == "4.9.0 (opencv-python)"
