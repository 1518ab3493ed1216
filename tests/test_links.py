"""Every link to the lesson's public home comes from config.yaml's ``source`` (tools/links.py), and
while it is empty no page links anywhere that does not exist (lesson.py's Workbench build)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT))
import lesson  # noqa: E402
import links  # noqa: E402


def test_the_lesson_is_in_sync_with_config_yaml():
    assert links.main(["--check"]) == 0, "the pages disagree with config.yaml (printed above): run `python lesson.py links`"


def test_every_address_comes_from_source_and_branch():
    home = links.Home("https://github.com/carpentries-incubator/gradcam-lesson/", "main")
    assert home.notebook("01-x") == "https://github.com/carpentries-incubator/gradcam-lesson/blob/main/notebooks/01-x.ipynb"
    assert home.binder("01-x") == ("https://mybinder.org/v2/gh/carpentries-incubator/gradcam-lesson/main"
                                   "?urlpath=lab/tree/notebooks/01-x.ipynb")
    assert home.colab("01-x") == ("https://colab.research.google.com/github/carpentries-incubator/gradcam-lesson/"
                                  "blob/main/notebooks/01-x.ipynb")
    gitlab = links.Home("https://gitlab.com/team/lesson.git", "trunk")
    assert gitlab.binder() == "https://mybinder.org/v2/gl/team%2Flesson/trunk?urlpath=lab/tree/notebooks"
    assert gitlab.colab("01-x") is None
    empty = links.Home("", "main")
    assert (empty.notebook("01-x"), empty.binder("01-x"), empty.colab("01-x"), empty.executed_page("01-x")) == \
        (None, None, None, None)
    with pytest.raises(ValueError, match="give the repository's https address"):
        links.Home("github.com/someone")


def page(tmp_path: Path) -> Path:
    path = tmp_path / "01-x.md"
    path.write_text("---\ntitle: X\n---\n\n::::: objectives\n\n- Learn.\n\n:::::\n\n## Start\n\nText.\n\n"
                    "1. Get it:\n\n   <!-- begin links download -->\n   <!-- end links -->\n", encoding="utf-8")
    return path


def test_blocks_are_written_where_they_belong_and_link_nowhere_without_a_home(tmp_path, monkeypatch):
    path = page(tmp_path)
    monkeypatch.setattr(links.notebook_tool, "EPISODES", tmp_path)
    text = links.rewrite(path, links.Home(""))
    objectives_end = text.index(":::::\n\n", text.index("objectives"))
    assert text.index("<!-- begin links episode") > objectives_end and text.index("## Start") > text.index(links.END)
    assert "it is the notebook `notebooks/01-x.ipynb` of the lesson's files" in text
    assert "`make site` builds this page with every cell run, as `_site/01-x.html`" in text
    assert "http" not in text
    assert "\n   From your instructors: a ZIP file to unpack" in text          # indented like its list item
    path.write_text(text, encoding="utf-8")
    home = links.Home("https://github.com/team/lesson", "main", "https://team.github.io/lesson/executed/")
    again = links.rewrite(path, home)
    assert again.count("<!-- begin links episode") == 1
    assert "[`notebooks/01-x.ipynb`](https://github.com/team/lesson/blob/main/notebooks/01-x.ipynb)" in again
    assert "[on Binder](https://mybinder.org/v2/gh/team/lesson/main?urlpath=lab/tree/notebooks/01-x.ipynb)" in again
    assert "[This page with every cell run](https://team.github.io/lesson/executed/01-x.html)" in again
    assert "`git clone https://github.com/team/lesson`, or download [its ZIP file]" \
           "(https://github.com/team/lesson/archive/refs/heads/main.zip)" in again


FOOTER = """<p>Last updated on 2026-12-07 |
        <a href="/edit/main/episodes/01-x.md">Edit this page <i aria-hidden="true" data-feather="edit"></i></a></p>
<p>
        <a href="/edit/main/episodes/01-x.md">Edit on GitHub</a>
        | <a href="/blob/main/CONTRIBUTING.md">Contributing</a>
        | <a href="/">Source</a></p>
<p>
        <a href="citation.html">Cite</a>
        | <a href="mailto:">Contact</a> | <a href="https://carpentries.org/about/">About</a></p>"""


def test_without_a_home_the_workbench_pages_leave_the_links_to_nowhere_out(tmp_path):
    (tmp_path / "page.html").write_text(FOOTER, encoding="utf-8")
    assert lesson.without_links_to_nowhere(tmp_path, "", "") == 1
    text = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert 'href="/' not in text and "mailto:" not in text and "Edit" not in text
    assert "<p>Last updated on 2026-12-07</p>" in text
    assert '<a href="citation.html">Cite</a> | <a href="https://carpentries.org/about/">About</a>' in text
    (tmp_path / "page.html").write_text(FOOTER, encoding="utf-8")
    assert lesson.without_links_to_nowhere(tmp_path, "https://github.com/team/lesson", "team@uni.edu") == 0


def test_config_values_are_read_as_written():
    config = ROOT / "config.yaml"
    assert lesson.config_value("source", config) == links.settings(config)["source"]
    assert lesson.config_value("title", config).startswith("Seeing what a neural network looks at")
