"""`make site`'s pages, opened in headless Chromium (Debian's package) with the network blocked.

One build per module, of the two episodes that need the most: episode 3 (formulas, a figure,
executed plots) and episode 5 (the explorer, drawn from its saved widget state).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[2]
BUILT = ["03-gradcam-by-hand", "05-exploring"]
EPISODES = [p.stem for p in sorted((ROOT / "episodes").glob("[0-9]*.md"))]
sys.path.insert(0, str(ROOT / "tools"))
import notebooks as notebook_tool  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "_site"
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "site.py"), "--out", str(out), "--only", *BUILT],
                            capture_output=True, text=True, timeout=900,
                            env=dict(os.environ, LESSON_MODEL="efficientnet_lite0", LESSON_OFFLINE="1"))
    assert result.returncode == 0, result.stdout + result.stderr
    return out, result.stdout + result.stderr


def _open(browser, offline, path: Path):
    """The page, with every request that leaves this computer aborted; (page, blocked, failed)."""
    page = browser.new_page(viewport={"width": 1200, "height": 1400})
    failed: list = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    blocked = offline(page)
    page.goto(path.as_uri())
    page.wait_for_load_state("networkidle")
    return page, blocked, failed


def test_the_build_is_quiet_about_kernels(site):
    _, log = site
    assert "running over TCP" not in log
    assert log.count("building") == len(BUILT)


def test_every_page_works_offline_with_its_images(site, browser, offline, screenshots):
    out, _ = site
    pages = sorted(out.glob("*.html"))
    assert {f"{stem}.html" for stem in BUILT} | {"index.html", "setup.html", "license.html"} <= {p.name for p in pages}
    for path in pages:
        page, blocked, failed = _open(browser, offline, path)
        assert not blocked, f"{path.name} asks the internet for {blocked}"
        assert not failed, f"{path.name}: failed requests {failed}"
        page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=30_000)
        broken = page.evaluate("() => [...document.images].filter(i => i.naturalWidth === 0)"
                               ".map(i => i.src.slice(0, 80))")
        assert not broken, f"{path.name}: broken images {broken}"
        assert page.locator("script[src*='require'], script[src^='http']").count() == 0
        text = page.locator("body").inner_text()
        assert "collapsed" not in text, f"{path.name} speaks of collapsed code"
        page.close()


def test_the_maths_is_rendered_offline(site, browser, offline, screenshots):
    out, _ = site
    page, blocked, _ = _open(browser, offline, out / "03-gradcam-by-hand.html")
    page.wait_for_function("() => document.querySelectorAll('mjx-container').length > 0", timeout=30_000)
    assert page.locator("mjx-container").count() >= 3
    prose = page.locator(".jp-MarkdownCell").all_inner_texts()
    raw = [text[:80] for text in prose if re.search(r"\$|\\\(|\\frac|\\sum", text)]
    assert not raw, f"formulas left as raw TeX: {raw}"
    page.locator("mjx-container").first.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / "site-maths.png"))
    assert "with the model efficientnet_lite0" in page.locator(".banner").inner_text()
    figure = page.locator(".jp-OutputArea-output img").first
    box = figure.bounding_box()
    assert box and box["width"] > 100 and box["height"] > 100          # an executed plot


def test_the_explorer_is_drawn_from_its_saved_state(site, browser, offline, screenshots):
    out, _ = site
    page, _, _ = _open(browser, offline, out / "05-exploring.html")
    widget = page.locator(".static-widget").first
    widget.scroll_into_view_if_needed()
    picture = widget.locator("img").first
    assert picture.evaluate("i => i.naturalWidth") >= 100             # the heatmap the explorer first showed
    assert re.search(r"\d+ · \w", widget.inner_text())                  # a class, "243 · bull mastiff" or so
    page.screenshot(path=str(screenshots / "site-explorer.png"))


def _links(path: Path) -> list:
    """(rel, href) of every link in a page."""
    class Links(HTMLParser):
        found: list = []

        def handle_starttag(self, tag, attrs):
            if tag == "a" and dict(attrs).get("href"):
                self.found.append((dict(attrs).get("rel", ""), dict(attrs)["href"]))

    parser = Links()
    parser.found = []
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.found


def test_pages_link_home_and_to_the_episodes_around_them(site):
    out, _ = site
    for stem in BUILT:
        at = EPISODES.index(stem)
        links = _links(out / f"{stem}.html")
        assert ("", "index.html") in links
        if at > 0:
            assert ("prev", f"{EPISODES[at - 1]}.html") in links
        if at + 1 < len(EPISODES):
            assert ("next", f"{EPISODES[at + 1]}.html") in links
    self_study = [p.stem for p in notebook_tool.self_study_pages()]
    assert self_study, "the self-study pages are built like the episodes and linked as such"
    unbuilt = {f"{stem}.html" for stem in EPISODES + self_study if stem not in BUILT}
    for path in out.glob("*.html"):
        for _, href in _links(path):
            href = href.split("#")[0]
            if not href or re.match(r"[a-z]+:", href) or href in unbuilt:
                continue
            assert (out / href).is_file(), f"{path.name} links {href}, which is not in the site"
    assert ("", "license.html") in _links(out / "index.html")
