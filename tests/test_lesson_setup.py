"""lesson.py's set-up: where PyTorch comes from, the fallback when that index is unreachable,
--dry-run, and `lab` stopping before JupyterLab when the lesson's images are missing.
No test reaches PyTorch's real index: indexes here are servers on 127.0.0.1 or closed ports."""

from __future__ import annotations

import http.server
import importlib.util
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


def load_lesson(root: Path = ROOT):
    spec = importlib.util.spec_from_file_location("lesson_under_test", root / "lesson.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def lesson():
    return load_lesson()


@pytest.fixture
def index_404():
    """A package index on 127.0.0.1 that answers 404 to everything."""

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_error(404)

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def index_ok(http_server):
    """A package index on 127.0.0.1 with a torch/ page (conftest's server on 127.0.0.1)."""
    folder, base = http_server
    (folder / "torch").mkdir()
    (folder / "torch" / "index.html").write_text("<a href='torch-2.5.1+cpu.whl'>torch</a>")
    return f"{base}/"


@pytest.mark.parametrize("platform, gpu, expected", [
    ("linux", False, "https://download.pytorch.org/whl/cpu"),
    ("linux", True, None),                 # an NVIDIA GPU: the default (CUDA) wheels
    ("darwin", False, None),               # macOS's and Windows' default wheels are CPU-only
    ("darwin", True, None),
    ("win32", False, None),
    ("win32", True, None),
])
def test_where_pytorch_comes_from(lesson, platform, gpu, expected):
    assert lesson.torch_index(platform, {}, gpu=gpu) == expected


@pytest.mark.parametrize("platform", ["linux", "darwin", "win32"])
def test_lesson_torch_index_overrides_the_choice(lesson, platform):
    assert lesson.torch_index(platform, {"LESSON_TORCH_INDEX": "http://127.0.0.1:1/simple"}, gpu=True) \
        == "http://127.0.0.1:1/simple"
    assert lesson.torch_index(platform, {"LESSON_TORCH_INDEX": "default"}, gpu=False) is None
    assert lesson.torch_index(platform, {"LESSON_TORCH_INDEX": " Default "}, gpu=False) is None


def test_a_gpu_is_seen_by_nvidia_smi_or_the_driver(lesson):
    def nowhere(name):
        return None

    def never(path):
        return False

    assert not lesson.has_nvidia_gpu(nowhere, never)
    assert lesson.has_nvidia_gpu(lambda name: "/usr/bin/nvidia-smi" if name == "nvidia-smi" else None, never)
    assert lesson.has_nvidia_gpu(nowhere, lambda path: path == "/proc/driver/nvidia")


def test_the_probe_tells_a_working_index_from_a_404_and_a_closed_port(lesson, index_ok, index_404):
    assert lesson.index_problem(index_ok) is None
    assert lesson.index_problem(index_404) == "it answered HTTP 404"
    started = time.perf_counter()
    problem = lesson.index_problem(f"http://127.0.0.1:{free_port()}/", timeout=2)
    assert problem and "refused" in problem.lower()
    assert time.perf_counter() - started < 2.5
    assert lesson.index_problem(str(ROOT)) is None                     # a local folder that is there
    assert lesson.index_problem(f"file://{ROOT}") is None


@pytest.mark.parametrize("index, named", [("junk", "no folder junk"), ("file:///nowhere/at/all", "no folder /nowhere"),
                                          ("http://exa mple.org/simple", "contains a space"),
                                          ("https://download.pytorch.org/whl/ cpu", "contains a space")])
def test_an_index_that_is_neither_a_url_nor_a_folder_is_a_problem_in_one_line(lesson, index, named, monkeypatch,
                                                                              capsys):
    assert named in lesson.index_problem(index, timeout=1)
    monkeypatch.setenv("LESSON_TORCH_INDEX", index)
    commands, out = recorded_install(lesson, monkeypatch, capsys)
    assert "--index-url" not in commands[0]                            # the default index instead
    assert f"Cannot reach {index} (" in out and "Traceback" not in out + capsys.readouterr().err


def recorded_install(lesson, monkeypatch, capsys):
    commands = []
    monkeypatch.setattr(lesson, "run", lambda *command, **kwargs: commands.append(list(command)) or 0)
    lesson.install_packages(Path("/venv/bin/python"), lesson.LEARNER_REQUIREMENTS)
    return commands, capsys.readouterr().out


def test_an_unreachable_index_falls_back_to_the_default_in_one_line(lesson, index_404, monkeypatch, capsys):
    monkeypatch.setenv("LESSON_TORCH_INDEX", index_404)
    commands, out = recorded_install(lesson, monkeypatch, capsys)
    assert [line for line in out.splitlines() if line.startswith("Cannot reach")] == [
        f"Cannot reach {index_404} (it answered HTTP 404): installing PyTorch from the default index instead."]
    torch_step, rest = commands
    assert torch_step[1:] == ["-m", "pip", "install", "torch>=2.2,<3", "torchvision>=0.17,<1"]
    assert "--index-url" not in rest and "--quiet" not in torch_step + rest
    assert rest[-4:] == ["-r", lesson.LEARNER_REQUIREMENTS, "-e", lesson.ROOT]


def test_a_reachable_index_serves_torch_and_torchvision_first_in_one_call(lesson, index_ok, monkeypatch, capsys):
    monkeypatch.setenv("LESSON_TORCH_INDEX", index_ok)
    commands, out = recorded_install(lesson, monkeypatch, capsys)
    assert "Cannot reach" not in out and "Step 1 of 2: torch and torchvision" in out
    assert commands[0][-4:] == ["torch>=2.2,<3", "torchvision>=0.17,<1", "--index-url", index_ok]
    assert "torch" not in " ".join(map(str, commands[1]))


def test_dry_run_prints_every_command_and_runs_none(tmp_path):
    """A copy of the front door in an empty folder: --dry-run must not even create .venv."""
    for name in ("lesson.py", "requirements.txt", "requirements-dev.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    env = {"PATH": "/usr/bin:/bin", "LESSON_TORCH_INDEX": f"http://127.0.0.1:{free_port()}/cpu"}
    result = subprocess.run([sys.executable, "lesson.py", "setup", "--dry-run"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if line.startswith("+ ")]
    venv_python = str(tmp_path / ".venv" / "bin" / "python")
    assert commands == [
        f"+ {sys.executable} -m venv {tmp_path / '.venv'}",
        f'+ {venv_python} -m pip install "torch>=2.2,<3" "torchvision>=0.17,<1" --index-url {env["LESSON_TORCH_INDEX"]}',
        f"+ {venv_python} -m pip install -r {tmp_path / 'requirements.txt'} -e {tmp_path}",
        f"+ {venv_python} -m helpers.setup",
    ]
    assert "Cannot reach" not in result.stdout          # a dry run does not probe
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["lesson.py", "requirements.txt", "requirements-dev.txt", "pyproject.toml"])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the CPU index is chosen on Linux only")
def test_dry_run_here_shows_the_cpu_index_unless_there_is_a_gpu(lesson, monkeypatch, capsys):
    monkeypatch.delenv("LESSON_TORCH_INDEX", raising=False)
    monkeypatch.setattr(lesson, "DRY_RUN", True)
    monkeypatch.setattr(lesson, "index_problem", lambda *a: pytest.fail("a dry run must not probe"))
    lesson.install_packages(Path("/venv/bin/python"), lesson.LEARNER_REQUIREMENTS)
    out = capsys.readouterr().out
    expected = "--index-url" if not lesson.has_nvidia_gpu() else '"torchvision>=0.17,<1"\n'
    assert expected in out
    if not lesson.has_nvidia_gpu():
        assert "--index-url https://download.pytorch.org/whl/cpu" in out


def fake_lab(lesson, monkeypatch, data_ok):
    commands = []
    monkeypatch.setattr(lesson, "setup", lambda developer=False: (Path("/venv/bin/python"), data_ok))
    monkeypatch.setattr(lesson, "run", lambda *command, **kwargs: commands.append(list(command)) or 0)
    return commands


def test_lab_stops_before_jupyterlab_when_the_images_are_missing(lesson, monkeypatch, capsys):
    commands = fake_lab(lesson, monkeypatch, data_ok=False)
    assert lesson.main(["lab"]) == 1
    out = capsys.readouterr().out
    assert commands == []
    assert "Stopped before starting JupyterLab" in out and "LESSON_DATA_MIRROR" in out and "--anyway" in out
    assert len(out.strip().splitlines()) <= 7


def test_lab_anyway_starts_jupyterlab_without_passing_the_flag_on(lesson, monkeypatch, capsys):
    commands = fake_lab(lesson, monkeypatch, data_ok=False)
    assert lesson.main(["lab", "--anyway", "--port=9999"]) == 0
    (command,) = commands
    assert command[1:4] == ["-m", "jupyter", "lab"] and "--port=9999" in command and "--anyway" not in command
    assert "Stopped" not in capsys.readouterr().out


def test_lab_starts_when_the_data_is_there(lesson, monkeypatch):
    commands = fake_lab(lesson, monkeypatch, data_ok=True)
    assert lesson.main(["lab"]) == 0 and commands[0][1:4] == ["-m", "jupyter", "lab"]


def test_binder_builds_with_cpu_pytorch_and_bakes_the_data_in():
    """repo2docker reads environment.yml and runs postBuild; the README's badge launches it."""
    import os
    import re

    post_build = ROOT / "postBuild"
    assert post_build.is_file() and os.access(post_build, os.X_OK)
    commands = [line.split("#")[0].strip() for line in post_build.read_text().splitlines()]
    assert "python -m pip install --no-deps --no-cache-dir ." in commands
    assert "python -m helpers.setup" in commands                       # images and weights into the image
    assert commands.index("python -m helpers.setup") > commands.index("python -m pip install --no-deps --no-cache-dir .")
    assert not (ROOT / "binder").exists()              # a binder/ folder would make repo2docker ignore the root files
    environment = (ROOT / "environment.yml").read_text()
    assert re.search(r"^\s+- pytorch-cpu", environment, re.M) and "jupyterlab" in environment
    # the badge comes from config.yaml's source (tools/links.py); none while the lesson has no public home
    sys.path.insert(0, str(ROOT / "tools"))
    import links

    home = links.Home.from_config()
    readme = (ROOT / "README.md").read_text()
    if home.source:
        assert f"[![Launch on Binder](https://mybinder.org/badge_logo.svg)]({home.binder()})" in readme
    else:
        assert "mybinder.org/v2" not in readme and "No Binder badge yet" in readme
    assert links.block("readme", links.Home("https://github.com/team/lesson"), ROOT / "README.md") == [
        "[![Launch on Binder](https://mybinder.org/badge_logo.svg)]"
        "(https://mybinder.org/v2/gh/team/lesson/main?urlpath=lab/tree/notebooks)"]
