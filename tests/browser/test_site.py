"""`make site`'s pages, opened in headless Chromium (Debian's package)."""

import os
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]


def test_the_site_shows_an_executed_episode(tmp_path, browser, screenshots):
    out = tmp_path / "_site"
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "site.py"), "--out", str(out),
                             "--only", "01-images-as-tensors"], capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, LESSON_MODEL="efficientnet_lite0"))
    assert result.returncode == 0, result.stdout + result.stderr
    for page in ("index.html", "01-images-as-tensors.html", "setup.html", "reference.html", "instructor-notes.html"):
        assert (out / page).is_file(), page
    page = browser.new_page(viewport={"width": 1200, "height": 1400})
    page.goto((out / "index.html").as_uri())
    assert page.locator("a[href='01-images-as-tensors.html']").count() == 1
    page.locator("a[href='01-images-as-tensors.html']").click()
    page.wait_for_load_state()
    assert "with the model efficientnet_lite0" in page.locator(".banner").inner_text()
    figure = page.locator(".jp-OutputArea-output img").first
    figure.scroll_into_view_if_needed()
    box = figure.bounding_box()
    assert box and box["width"] > 100 and box["height"] > 100       # the executed plt.imshow
    assert "Ready for the lesson" in page.content() or "Not ready yet" in page.content()
    page.screenshot(path=str(screenshots / "site-episode-1.png"))
