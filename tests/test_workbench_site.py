"""The lesson as the Carpentries Workbench builds it (`make workbench`: R's sandpaper, varnish, pandoc).

One build per test session, from a copy of the lesson, into a temporary folder; every page is read
in the learners' view (site/docs/) and the instructors' (site/docs/instructor/). Our own site
(tools/site.py) takes another path through pandoc, so only these pages show what a Carpentries
maintainer, and a learner on the lesson's website, will see.
Skipped only where R or sandpaper is missing (`python lesson.py workbench` says how to install them).
"""

from __future__ import annotations

import html.parser
import re
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional
from urllib.parse import unquote, urlsplit

import pytest

from test_workbench import EPISODES, ROOT, copy_lesson, run_workbench, workbench_missing

sys.path.insert(0, str(ROOT / "tools"))
import notebooks as notebook_tool  # noqa: E402

#: Pandoc attributes that were printed instead of read: {alt=..., {.class, {#id, {width=...
RAW_ATTRIBUTES = re.compile(r"\{(?:[.#][\w-]|[\w-]+=)")
#: varnish 1.1.1 ships favicons for swc, dc, lc and cp but none for the Incubator, yet every page's
#: <head> links favicons/incubator/...: browsers then show no icon. Not the lesson's to fix.
VARNISH_FAVICONS_GAP = re.compile(r"(^|/)favicons/incubator/")
#: Standalone images in an episode: the ones pandoc makes figures of.
SOURCE_FIGURE = re.compile(r"^!\[(?P<caption>[^\]]*)\]\((?P<src>[^)\s]+)\)(?:\{alt=(?P<q>['\"])(?P<alt>.*?)(?P=q)\})?",
                           flags=re.M)


# ------------------------------------------------------------------------ reading the pages

class Element:
    def __init__(self, tag: str, attrs: Dict[str, str], parent: Optional["Element"]):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: List["Element | str"] = []

    @property
    def classes(self) -> List[str]:
        return self.attrs.get("class", "").split()

    def iter(self) -> Iterator["Element"]:
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    def text(self) -> str:
        return "".join(child if isinstance(child, str) else child.text() for child in self.children)


class _TreeBuilder(html.parser.HTMLParser):
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = self.current = Element("#document", {}, None)

    def handle_starttag(self, tag, attrs):
        element = Element(tag, {name: value or "" for name, value in attrs}, self.current)
        self.current.children.append(element)
        if tag not in self.VOID:
            self.current = element

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Element(tag, {name: value or "" for name, value in attrs}, self.current))

    def handle_endtag(self, tag):
        open_element = self.current
        while open_element is not None and open_element.tag != tag:
            open_element = open_element.parent
        if open_element is not None and open_element.parent is not None:    # a stray end tag closes nothing
            self.current = open_element.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse(path: Path) -> Element:
    builder = _TreeBuilder()
    builder.feed(path.read_text(encoding="utf-8"))
    builder.close()
    return builder.root


def prose(element: Element, skip=("pre", "code", "script", "style")) -> Iterator[str]:
    """The page's text outside code, scripts and styles, and its alt and title attributes."""
    for name in ("alt", "title"):
        if name in element.attrs:
            yield element.attrs[name]
    for child in element.children:
        if isinstance(child, str):
            yield child
        elif child.tag not in skip:
            yield from prose(child, skip)


def plain(text: str) -> str:
    """Text as a reader sees it: Markdown's backticks and stars gone, typographic quotes straight."""
    text = re.sub(r"[`*]", "", text).replace("\u2019", "'").replace("\u2018", "'")
    return " ".join(text.replace("\u201c", '"').replace("\u201d", '"').split())


# ------------------------------------------------------------------------ one build per session

@pytest.fixture(scope="session")
def workbench_site(tmp_path_factory) -> Path:
    """site/docs/ of the lesson, built once by `python lesson.py workbench` in a copy of the lesson."""
    reason = workbench_missing()
    if reason:
        pytest.skip(f"{reason}: the Carpentries Workbench cannot build the lesson here "
                    f"(`python lesson.py workbench` says how to install it)")
    copy = copy_lesson(tmp_path_factory.mktemp("workbench") / "lesson")
    result = run_workbench(copy)
    assert result.returncode == 0, f"make workbench failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    site = copy / "site" / "docs"
    assert (site / "index.html").is_file() and (site / "instructor" / "index.html").is_file()
    return site


@pytest.fixture(scope="session")
def pages(workbench_site) -> Dict[Path, Element]:
    """Every HTML page of the site, both views, parsed once."""
    found = {path: parse(path) for path in sorted(workbench_site.rglob("*.html"))}
    assert len(found) > 2 * len(EPISODES)
    return found


def episode_pages(site: Path, episode: Path) -> List[Path]:
    """An episode's page in the learners' view and in the instructors'."""
    name = episode.stem + ".html"
    return [site / name, site / "instructor" / name]


# ------------------------------------------------------------------------ the tests

def test_no_page_prints_markdown_attributes_as_text(pages):
    printed = {}
    for path, page in pages.items():
        hits = [match.string[max(0, match.start() - 40):match.end() + 40]
                for text in prose(page) for match in RAW_ATTRIBUTES.finditer(text)]
        if hits:
            printed[path.name if path.parent.name == "docs" else f"instructor/{path.name}"] = hits[:2]
    assert not printed, f"pandoc printed attributes as text (quote alt text with \"...\"): {printed}"


def test_every_image_has_alt_text(pages):
    missing = [f"{path.name}: {img.attrs.get('src')}" for path, page in pages.items()
               for img in page.iter() if img.tag == "img" and not img.attrs.get("alt", "").strip()]
    assert not missing, f"images without alt text: {missing}"


@pytest.mark.parametrize("episode", EPISODES, ids=lambda p: p.name)
def test_every_figure_is_a_figure_with_its_caption_and_alt_text(episode, workbench_site, pages):
    figures = list(SOURCE_FIGURE.finditer(episode.read_text(encoding="utf-8")))
    for path in episode_pages(workbench_site, episode):
        assert path in pages, f"{episode.name} was not built into {path.relative_to(workbench_site)} (config.yaml?)"
        built = {}
        for figure in (element for element in pages[path].iter() if element.tag == "figure"):
            image = next((e for e in figure.iter() if e.tag == "img"), None)
            caption = next((e for e in figure.iter() if e.tag == "figcaption"), None)
            if image is not None:
                built[(path.parent / image.attrs["src"]).resolve()] = (image, caption)
        for source in figures:
            target = (workbench_site / source["src"]).resolve()
            where = f"{path.relative_to(workbench_site)}: {source['src']}"
            assert target in built, f"{where} is not a <figure> (its alt text or caption was not read)"
            image, caption = built[target]
            assert caption is not None and plain(caption.text()) == plain(source["caption"]), \
                f"{where}: the caption is {caption.text() if caption is not None else None!r}"
            assert plain(image.attrs.get("alt", "")) == plain(source["alt"] or ""), f"{where}: alt text differs"


def _resolves(page: Path, reference: str, site: Path, pages: Dict[Path, Element], ids) -> Optional[str]:
    """None when ``reference`` on ``page`` reaches a built file (and anchor), else what is wrong."""
    parts = urlsplit(reference)
    if parts.scheme or parts.netloc:
        return None                                   # http:, mailto:, javascript: ...: not the site's
    target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
    if target.is_dir():
        target = target / "index.html"
    if site.resolve() not in target.parents or not target.is_file():
        return "no such file"
    if parts.fragment and target.suffix == ".html":
        if target not in ids:
            ids[target] = {e.attrs[key] for e in pages[target].iter() for key in ("id", "name") if key in e.attrs}
        if unquote(parts.fragment) not in ids[target]:
            return f"no #{parts.fragment} in {target.name}"
    return None


def test_every_internal_link_reaches_a_built_page_and_anchor(workbench_site, pages):
    broken, ids = [], {}
    for path, page in pages.items():
        for element in page.iter():
            for key in ("href", "src"):
                reference = element.attrs.get(key)
                if reference is None or (element.tag == "link" and VARNISH_FAVICONS_GAP.search(reference)):
                    continue
                problem = _resolves(path, reference, workbench_site, pages, ids)
                if problem:
                    broken.append(f"{path.relative_to(workbench_site)}: {reference} ({problem})")
    assert not broken, "broken links:\n" + "\n".join(sorted(set(broken)))


def source_counts(episode: Path) -> Dict[str, int]:
    kinds = [match.group(1) for line in episode.read_text(encoding="utf-8").splitlines()
             for match in [notebook_tool.OPEN_DIV.match(line)] if match]
    return {kind: kinds.count(kind) for kind in ("challenge", "solution")}


def built_counts(page: Element) -> Dict[str, int]:
    elements = list(page.iter())
    return {"challenge": sum(e.tag == "div" and {"callout", "challenge"} <= set(e.classes) for e in elements),
            "solution": sum("solution-button" in e.classes for e in elements)}


@pytest.mark.parametrize("episode", EPISODES, ids=lambda p: p.name)
def test_every_challenge_and_solution_is_a_box(episode, workbench_site, pages):
    expected = source_counts(episode)
    assert expected["challenge"] > 0
    for path in episode_pages(workbench_site, episode):
        assert built_counts(pages[path]) == expected, path.relative_to(workbench_site)


def test_the_all_in_one_page_holds_every_challenge_and_solution(workbench_site, pages):
    expected = {kind: sum(source_counts(episode)[kind] for episode in EPISODES) for kind in ("challenge", "solution")}
    for path in (workbench_site / "aio.html", workbench_site / "instructor" / "aio.html"):
        assert built_counts(pages[path]) == expected, path.relative_to(workbench_site)


# ------------------------------------------------------------------------ issue 25: what the pages show

#: Sentences that point at something the code printed or drew. Each needs an output block or a figure
#: in its section of the built page (tools/outputs.py writes them under the cells an author marks).
REFERENCE = re.compile(r"\b(?:printout|printed|(?:figure|map|maps|heatmaps?|picture|plot|curves?) (?:above|below)"
                       r"|below (?:are|is) (?:the|four|three|two|\w+ maps)|shown (?:above|below))\b", re.IGNORECASE)


def main_content(page: Element) -> Element:
    return next(e for e in page.iter() if e.tag == "main")


def sections(page: Element) -> Iterator[Element]:
    """The page's level-2 sections (the Workbench wraps each ``##`` heading and what follows)."""
    return (e for e in main_content(page).iter() if e.tag == "section" and e.attrs.get("id"))


def shows_output(element: Element) -> bool:
    return any(e.tag == "figure" or (e.tag == "pre" and "output" in e.classes) for e in element.iter())


@pytest.mark.parametrize("episode", EPISODES, ids=lambda p: p.name)
def test_every_reference_to_a_printout_or_figure_has_one_in_its_section(episode, workbench_site, pages):
    page = pages[workbench_site / f"{episode.stem}.html"]
    missing = []
    for section in sections(page):
        text = plain(" ".join(prose(section)))
        found = [text[max(0, m.start() - 50):m.end() + 30] for m in REFERENCE.finditer(text)]
        if found and not shows_output(section):
            missing.append(f"section #{section.attrs['id']}: " + " | ".join(found))
    assert not missing, (f"{episode.name}: these sentences point at a printout or figure the page does not show; "
                         "mark the cells (<!-- output: text -->, <!-- output: figure alt=\"...\" -->, CONTRIBUTING.md) "
                         "and run `python lesson.py outputs`:\n" + "\n".join(missing))


def test_the_marked_outputs_are_on_the_page_as_output_blocks_and_figures(workbench_site, pages):
    """Episode 1, the demonstration: its printouts as the Workbench's OUTPUT blocks, its figures with
    alt text and a caption naming the model."""
    page = main_content(pages[workbench_site / "01-images-as-tensors.html"])
    blocks = [e.text() for e in page.iter() if e.tag == "pre" and "output" in e.classes]
    assert any("torch.Size([1, 3, 224, 224])" in block for block in blocks), blocks
    figures = [e for e in page.iter() if e.tag == "figure"]
    generated = [f for f in figures if any("-output-" in i.attrs.get("src", "") for i in f.iter() if i.tag == "img")]
    assert len(generated) >= 2
    for figure in generated:
        caption = plain(next(e for e in figure.iter() if e.tag == "figcaption").text())
        assert caption.endswith("Notebook run with the offline stand-in, EfficientNet-Lite0.") or \
            caption.endswith("Notebook run with ResNet-50."), caption


@pytest.mark.parametrize("episode", EPISODES, ids=lambda p: p.name)
def test_each_episode_page_says_where_its_notebook_and_executed_page_are(episode, workbench_site, pages):
    sys.path.insert(0, str(ROOT / "tools"))
    import links

    home = links.Home.from_config(ROOT / "config.yaml")
    page = main_content(pages[workbench_site / f"{episode.stem}.html"])
    text = plain(page.text())
    hrefs = {e.attrs.get("href") for e in page.iter() if e.tag == "a"}
    assert f"notebooks/{episode.stem}.ipynb" in text, f"{episode.name}: run `python lesson.py links`"
    if home.source:
        assert home.notebook(episode.stem) in hrefs
    if home.executed:
        assert home.executed_page(episode.stem) in hrefs
    else:
        assert f"make site builds this page with every cell run, as _site/{episode.stem}.html" in text


PLACEHOLDERS = re.compile(r"example\.(?:org|com|net)|gradcam-lesson/gradcam-lesson|OWNER/REPO|your-(?:repo|org)",
                          re.IGNORECASE)


def test_no_placeholder_address_in_what_learners_see(workbench_site, pages):
    sys.path.insert(0, str(ROOT / "tools"))
    import links

    home = links.Home.from_config(ROOT / "config.yaml")
    found = []
    for path, page in pages.items():
        where = path.relative_to(workbench_site)
        for element in page.iter():
            for key in ("href", "src"):
                value = element.attrs.get(key, "")
                if PLACEHOLDERS.search(value) or value.strip() in ("mailto:", "#", "/"):
                    found.append(f"{where}: {key}={value!r}")
                if re.match(r"https://(?:mybinder\.org|colab\.research\.google\.com)/", value) and not (
                        home.source and f"{home.owner}/{home.repo}" in value.replace("%2F", "/")):
                    found.append(f"{where}: {value} is not made from config.yaml's source ({home.source!r})")
        text = " ".join(prose(page))
        found += [f"{where}: text {m.group(0)!r}" for m in PLACEHOLDERS.finditer(text)]
    for source in (ROOT / "README.md", ROOT / "learners" / "setup.md", ROOT / "config.yaml"):
        found += [f"{source.name}: {m.group(0)!r}" for m in PLACEHOLDERS.finditer(source.read_text(encoding="utf-8"))]
    assert not found, "\n".join(sorted(set(found)))


def test_the_setup_page_opens_with_a_heading_and_has_a_route_per_system(workbench_site, pages):
    """The set-up page, as the Workbench puts it on the home page (learners' view) under #setup."""
    setup = next(e for e in main_content(pages[workbench_site / "index.html"]).iter()
                 if e.tag == "section" and e.attrs.get("id") == "setup")
    blocks = [child for child in setup.children if isinstance(child, Element)]
    first = next(e for e in blocks if e.tag not in ("style", "script"))
    first_heading = first if first.tag in ("h2", "h3") else next((e for e in first.iter() if e.tag in ("h2", "h3")), None)
    assert first_heading is not None and first.iter().__next__() is not None
    assert plain(first_heading.text()) == "Before the workshop", f"the set-up page opens with {first.text()[:80]!r}"
    routes = {}
    for section in (e for e in setup.iter() if e.tag == "section" and e.attrs.get("id")):
        heading = next(e for e in section.iter() if e.tag == "h2")
        code = [e.text().strip() for e in section.iter() if e.tag == "pre"]
        routes[plain(heading.text())] = code
    assert routes["Windows"] == ["py lesson.py lab"]
    assert routes["macOS"] == ["python3 lesson.py lab"]
    assert routes["Linux"] == ["make lab"]
    binder = [name for name in routes if "Binder" in name and "JupyterHub" in name]
    assert binder and routes[binder[0]] == ["python -m helpers.check"]
    assert "Google Colab (no installation)" in routes and "Offline: an instructor's USB stick" in routes
    too_long = [line for code in routes.values() for block in code for line in block.splitlines() if len(line) > 79]
    assert not too_long


def test_one_schedule_in_each_view_breaks_included(workbench_site, pages):
    """The index (learners) and the instructors' home page show one schedule, the index's, with its
    breaks; the Workbench's own (no breaks, under "Credits") is hidden by the index's style."""
    for name in ("index.html", "instructor/index.html"):
        page = main_content(pages[workbench_site / name])
        tables = [e for e in page.iter() if e.tag == "table" and "start" in plain(e.text())[:60]]
        assert len(tables) == 2 and all("Break" in t.text() for t in tables), name       # half day, full day
        workbench_own = [e for e in page.iter() if e.tag == "table" and "schedule" in e.classes]
        if workbench_own:
            styles = " ".join(e.text() for e in page.iter() if e.tag == "style")
            assert re.search(r"table\.schedule, table\.schedule \+ p\s*\{\s*display:\s*none;?\s*\}", styles), \
                f"{name}: two schedules"
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian's chromium is not installed: the visible schedules were checked in the HTML only")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            for name in ("index.html", "instructor/index.html"):
                page.goto((workbench_site / name).as_uri())
                visible = page.evaluate("""() => [...document.querySelectorAll('main table')]
                    .filter(t => t.offsetParent !== null && /^start/.test(t.innerText))
                    .map(t => t.innerText)""")
                assert len(visible) == 2 and all("Break" in text for text in visible), (name, visible)
                assert not page.evaluate("""() => [...document.querySelectorAll('main table')]
                    .some(t => t.offsetParent !== null && /\\d\\dh \\d\\dm/.test(t.innerText))"""), name
                assert not page.get_by_text("Download files required for the lesson").is_visible()
                assert not page.get_by_text("The actual schedule may vary slightly").is_visible()
        finally:
            browser.close()
