"""Headless Chromium for the browser tests: Debian's package, driven by Playwright's Python API
(never `playwright install`). CI installs it (.ci/run); elsewhere these tests skip without it.

Fixtures: ``browser`` (a headless Chromium), ``screenshots`` (where to save them), ``offline``
(aborts a page's requests to anywhere but this computer) and
``jupyterlab_server`` (starts JupyterLab on 127.0.0.1 on a folder of your choice)."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable, Iterator, Tuple

import pytest

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]
LOCAL = ("http://127.0.0.1", "file://", "data:", "blob:", "about:")


def pytest_collection_modifyitems(config, items):
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("CI"):
        raise pytest.UsageError("CI must install Debian's chromium for the browser tests (see .ci/run)")
    skip = pytest.mark.skip(reason="Debian's chromium is not installed (apt-get install chromium)")
    for item in items:
        if "tests/browser" in str(item.fspath).replace("\\", "/"):
            item.add_marker(skip)


@pytest.fixture
def browser():
    """A headless Chromium, closed after the test."""
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def screenshots() -> Path:
    """Where the browser tests save their screenshots (ignored by git)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def block_internet(page) -> list:
    """Abort every request that leaves this computer; returns the list of aborted URLs.

    Call it before ``page.goto``: afterwards, the list says what the page tried to fetch from
    elsewhere (a CDN, fonts, ...)."""
    blocked: list = []

    def route(request_route):
        url = request_route.request.url
        if url.startswith(LOCAL):
            request_route.continue_()
        else:
            blocked.append(url)
            request_route.abort()

    page.route("**/*", route)
    return blocked


@pytest.fixture
def offline():
    """``blocked = offline(page)``: see block_internet."""
    return block_internet


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_jupyterlab(root_dir: Path, home: Path) -> Iterator[Tuple[str, str]]:
    """JupyterLab on 127.0.0.1 (free port, random token) serving ``root_dir``; yields (base URL, token).

    Its settings, workspaces and runtime files live in ``home``: nothing of the user's is read
    or written. Windowing is off, so that every cell of a notebook is in the page."""
    port, token = free_port(), secrets.token_hex(16)
    settings = home / "settings"
    for plugin, values in {"@jupyterlab/notebook-extension/tracker": '{"windowingMode": "none"}',
                           "@jupyterlab/apputils-extension/notification": '{"fetchNews": "false"}'}.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(values)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), JUPYTERLAB_SETTINGS_DIR=str(settings),
               LESSON_OFFLINE="1", LESSON_MODEL=os.environ.get("LESSON_MODEL", "efficientnet_lite0"))
    env.pop("MPLBACKEND", None)      # the tests' Agg would hide every figure: kernels draw inline, as for learners
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}",
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("JupyterLab did not start") from None
                time.sleep(0.5)
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="session")
def jupyterlab_server(tmp_path_factory) -> Iterator[Callable[[Path], Tuple[str, str]]]:
    """A factory: ``base, token = jupyterlab_server(folder)`` starts JupyterLab on ``folder``.

    Servers stop at the end of the session."""
    with contextlib.ExitStack() as stack:
        def start(root_dir: Path) -> Tuple[str, str]:
            home = tmp_path_factory.mktemp("jupyter-home")
            return stack.enter_context(running_jupyterlab(Path(root_dir), home))

        yield start
