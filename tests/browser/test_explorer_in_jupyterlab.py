"""Episode 4's explorer in a real JupyterLab, driven by headless Chromium (Debian's package).

Starts JupyterLab on 127.0.0.1 with a free port and a token, opens the notebook, runs all
cells, checks the widgets render, picks another class and checks the heatmap changed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    home = tmp_path_factory.mktemp("jupyter")
    workdir = tmp_path_factory.mktemp("notebooks")
    shutil.copyfile(ROOT / "notebooks" / "04-exploring.ipynb", workdir / "04-exploring.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    settings = home / "settings"
    for plugin, values in {"@jupyterlab/notebook-extension/tracker": '{"windowingMode": "none"}',
                           "@jupyterlab/apputils-extension/notification": '{"fetchNews": "false"}'}.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(values)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), JUPYTERLAB_SETTINGS_DIR=str(settings),
               LESSON_OFFLINE="1",
               LESSON_MODEL=os.environ.get("LESSON_MODEL", "efficientnet_lite0"))
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={workdir}",
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


def test_the_explorer_renders_and_answers_in_jupyterlab(jupyterlab, browser, screenshots):
    base, token = jupyterlab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{base}/lab/tree/04-exploring.ipynb?token={token}", wait_until="domcontentloaded")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    # the kernel must be up before "Run All Cells", or the click runs nothing
    page.wait_for_function("() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]"
                           ".some(e => e.innerText.includes('| Idle'))", timeout=90_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()

    try:
        page.locator(".jp-OutputArea-output .widget-image").first.wait_for(state="visible", timeout=120_000)
    except Exception:
        page.screenshot(path=str(screenshots / "explorer-timeout.png"), full_page=True)
        raise
    # all cells done: the kernel is idle again and both explorers (episode + solution) are drawn
    page.wait_for_function("() => document.querySelectorAll('.jp-OutputArea-output .widget-image').length >= 2"
                           " && [...document.querySelectorAll('.jp-StatusBar-TextItem')]"
                           ".some(e => e.innerText.includes('| Idle'))", timeout=120_000)
    # only outputs count: the lesson's own callout quotes that message
    errors = page.locator(".jp-OutputArea-output", has_text="Error displaying widget")
    if errors.count():
        page.screenshot(path=str(screenshots / "widget-error.png"), full_page=True)
        raise AssertionError(f"widgets failed to render: {errors.all_inner_texts()}")
    # the notebook's last explorer is the live one: a new explorer on a model releases the older
    live = page.locator(".jp-OutputArea-output", has=page.locator(".widget-image")).last
    heatmap = live.locator(".widget-image")
    class_select = live.locator(".widget-dropdown", has_text="Class").locator("select").first
    class_select.wait_for(timeout=30_000)
    shown = class_select.locator("option").all_inner_texts()      # ipywidgets uses no-break spaces
    labels = [label.replace("\xa0", " ") for label in shown]
    assert "245 · French bulldog" in labels and "281 · tabby" in labels
    before = heatmap.get_attribute("src")
    current = labels[int(class_select.evaluate("s => s.selectedIndex"))]
    chosen = "281 · tabby" if current != "281 · tabby" else "245 · French bulldog"
    class_select.select_option(label=shown[labels.index(chosen)])
    page.wait_for_function("(old) => { const all = document.querySelectorAll('.jp-OutputArea-output .widget-image');"
                           " return all.length && all[all.length - 1].src !== old; }", arg=before, timeout=30_000)
    status = page.locator(".widget-html", has_text="top class").first
    status.wait_for(timeout=30_000)
    page.wait_for_function("(text) => [...document.querySelectorAll('.widget-html')]"
                           ".some(e => e.innerText.replace(/\\u00a0/g, ' ').includes(text))", arg=chosen,
                           timeout=30_000)
    heatmap.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / "explorer.png"))
    assert errors.count() == 0
