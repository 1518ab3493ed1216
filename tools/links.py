#!/usr/bin/env python3
"""Every link to the lesson's public home, from one setting: config.yaml's ``source``.

    python tools/links.py           # rewrite the generated link blocks (python lesson.py links)
    python tools/links.py --check   # exit 1 if a block disagrees with config.yaml

``source`` is the Workbench's own field (its "Edit this page" and "Source" links). From it, and
from ``branch``, come the links to each episode's notebook, to Binder and to Colab; from
``executed`` (a URL, or empty) the links to `make site`'s pages where they are published. They
are written into blocks between two comments, which this tool owns::

    <!-- begin links episode: ... -->
    ...
    <!-- end links -->

``episode`` (under an episode's objectives, added there when missing: its notebook, Binder,
Colab, its executed page), ``download`` (the set-up page: how to get the lesson's files),
``readme`` (README's Binder badge) and ``colab`` (the set-up page's line for Colab). While
``source`` is empty (the lesson has no public home yet) the blocks say where the files are
instead, and link nowhere: no placeholder address is ever shown. tools/notebooks.py leaves the
blocks out of the notebooks.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import notebooks as notebook_tool  # noqa: E402

CONFIG = ROOT / "config.yaml"
README = ROOT / "README.md"
SETUP = ROOT / "learners" / "setup.md"
BEGIN, END = notebook_tool.LINKS_BEGIN, notebook_tool.LINKS_END
BEGIN_TEXT = "<!-- begin links {kind}: written by `python lesson.py links` from config.yaml; do not edit -->"


def settings(config: Path = CONFIG) -> Dict[str, str]:
    """config.yaml's top-level ``key: 'value'`` lines (the lesson's, not a YAML parser's worth)."""
    found = {}
    for line in config.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([\w-]+):\s*(['\"]?)(.*?)\2\s*(?:#.*)?$", line)
        if match:
            found[match[1]] = match[3]
    return found


class Home:
    """The lesson's public home, as config.yaml says: the addresses derived from it."""

    def __init__(self, source: str = "", branch: str = "main", executed: str = ""):
        self.source, self.branch, self.executed = source.rstrip("/"), branch or "main", executed
        parts = urlsplit(self.source)
        path = parts.path.strip("/").removesuffix(".git")
        self.host = parts.netloc.lower()
        self.owner, _, self.repo = path.partition("/")
        if self.source and (parts.scheme != "https" or not self.owner or not self.repo or "/" in self.repo):
            raise ValueError(f"config.yaml's source is {source!r}: give the repository's https address, such as "
                             f"https://github.com/OWNER/REPOSITORY, or leave it empty ('') until it has one")
        if self.executed and not self.executed.startswith("https://"):
            raise ValueError(f"config.yaml's executed is {executed!r}: give an https address, or leave it empty")

    @classmethod
    def from_config(cls, config: Path = CONFIG) -> "Home":
        values = settings(config)
        return cls(values.get("source", ""), values.get("branch", "main"), values.get("executed", ""))

    def notebook(self, stem: str) -> Optional[str]:
        return f"{self.source}/blob/{self.branch}/notebooks/{stem}.ipynb" if self.source else None

    def binder(self, stem: Optional[str] = None) -> Optional[str]:
        """mybinder.org, for repositories on GitHub or GitLab; the lab on one notebook, or on notebooks/."""
        kind = {"github.com": "gh", "gitlab.com": "gl"}.get(self.host)
        if not kind:
            return None
        repository = f"{self.owner}/{self.repo}" if kind == "gh" else f"{self.owner}%2F{self.repo}"
        target = f"notebooks/{stem}.ipynb" if stem else "notebooks"
        return f"https://mybinder.org/v2/{kind}/{repository}/{self.branch}?urlpath=lab/tree/{target}"

    def colab(self, stem: str) -> Optional[str]:
        if self.host != "github.com":
            return None
        return f"https://colab.research.google.com/github/{self.owner}/{self.repo}/blob/{self.branch}/notebooks/{stem}.ipynb"

    def executed_page(self, stem: str) -> Optional[str]:
        return f"{self.executed.rstrip('/')}/{stem}.html" if self.executed else None


def block(kind: str, home: Home, path: Path) -> List[str]:
    """The lines between a block's two comments."""
    if kind == "episode":
        return episode_lines(home, path.stem)
    if kind == "readme":
        binder = home.binder()
        return ([f"[![Launch on Binder](https://mybinder.org/badge_logo.svg)]({binder})"] if binder else
                ["*No Binder badge yet: the lesson has no public repository (see \"When the lesson gets its public "
                 "home\", below).*"])
    if kind == "download":
        if not home.source:
            return ["From your instructors: a ZIP file to unpack, or an address for `git clone` (the lesson",
                    "has no public home yet)."]
        archive = (f"{home.source}/archive/refs/heads/{home.branch}.zip" if home.host == "github.com" else
                   f"{home.source}/-/archive/{home.branch}/{home.repo}-{home.branch}.zip"
                   if home.host == "gitlab.com" else "")
        zipped = f", or download [its ZIP file]({archive}) and unpack it" if archive else ""
        return [f"`git clone {home.source}`{zipped}."]
    if kind == "colab":
        if not home.source:
            return ["Colab installs the lesson's helpers from its public repository, which it does not have",
                    "yet: until then, take the route for your computer above."]
        return ["```python", f'!pip install -q "git+{home.source}@{home.branch}"', "!python -m helpers.setup", "```"]
    raise ValueError(f"{path.name}: no kind of links block called {kind!r} (episode, readme, download, colab)")


def episode_lines(home: Home, stem: str) -> List[str]:
    """An episode's line about its notebook and its executed page."""
    notebook = f"`notebooks/{stem}.ipynb`"
    if home.source:
        where = [f"[{notebook}]({home.notebook(stem)})"]
        ways = [f"[on Binder]({home.binder(stem)})" if home.binder(stem) else "",
                f"[in Colab]({home.colab(stem)})" if home.colab(stem) else ""]
        ways = [way for way in ways if way]
        opened = f"; open it {' or '.join(ways)}, or set up your laptop (see [Setup](../learners/setup.md))" \
            if ways else " (see [Setup](../learners/setup.md))"
        text = f"*Run this episode yourself: it is the notebook {where[0]}{opened}."
    else:
        text = (f"*Run this episode yourself: it is the notebook {notebook} of the lesson's files (see "
                f"[Setup](../learners/setup.md)).")
    page = home.executed_page(stem)
    text += (f" [This page with every cell run]({page}).*" if page else
             f" `make site` builds this page with every cell run, as `_site/{stem}.html`.*")
    return [text]


BLOCK = re.compile(r"^(?P<indent>\s*)<!-- begin links (?P<kind>[\w-]+)\b.*-->\s*$")


def with_episode_block(lines: List[str]) -> List[str]:
    """An episode's lines with an (empty) episode links block after its objectives, if it has none."""
    if any(found and found["kind"] == "episode" for found in map(BLOCK.match, lines)):
        return lines
    at = next((i for i, line in enumerate(lines) if re.match(r"^:{3,}\s*objectives\s*$", line)), None)
    close = next((i for i in range(at + 1, len(lines)) if re.match(r"^:{3,}\s*$", lines[i])), None) \
        if at is not None else None
    if close is None:                                   # no objectives: after the front matter
        close = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), 0)
    return lines[:close + 1] + ["", BEGIN_TEXT.format(kind="episode"), END] + lines[close + 1:]


def rewrite(path: Path, home: Home) -> str:
    """``path``'s text with every links block written afresh (an episode gets one if it has none)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    if path.parent.resolve() == notebook_tool.EPISODES.resolve():
        lines = with_episode_block(lines)
    result: List[str] = []
    at = 0
    while at < len(lines):
        found = BLOCK.match(lines[at])
        if not found:
            result.append(lines[at])
            at += 1
            continue
        end = next((i for i in range(at, len(lines)) if lines[i].strip() == END), None)
        if end is None:
            raise ValueError(f"{path.name}, line {at + 1}: a links block without its end line {END}")
        indent = found["indent"]
        result += [indent + line if line else "" for line in
                   [BEGIN_TEXT.format(kind=found["kind"]), "", *block(found["kind"], home, path), "", END]]
        at = end + 1
    return "\n".join(result)


def pages() -> List[Path]:
    return [README, SETUP, *notebook_tool.episodes(), *notebook_tool.self_study_pages()]


def missing_blocks() -> List[str]:
    """The pages that must hold a links block and do not: README and the set-up page (an episode
    gets its block from `rewrite`)."""
    wanted = [(README, "readme"), (SETUP, "download"), (SETUP, "colab")]
    return [f"{path.relative_to(ROOT)} has no links block ({BEGIN_TEXT.format(kind=kind)} ... {END}): add one, "
            f"then run `python lesson.py links`" for path, kind in wanted
            if not re.search(rf"^\s*<!-- begin links {kind}\b", path.read_text(encoding="utf-8"), re.MULTILINE)]


def main(argv: List[str]) -> int:
    home = Home.from_config()
    stale = []
    for path in pages():
        text = rewrite(path, home)
        if text != path.read_text(encoding="utf-8"):
            if "--check" in argv:
                stale.append(str(path.relative_to(ROOT)))
            else:
                path.write_text(text, encoding="utf-8")
                print(f"wrote {path.relative_to(ROOT)}")
    if "--check" in argv:
        problems = ([f"out of date with config.yaml (run `python lesson.py links`): {', '.join(stale)}"] if stale
                    else []) + missing_blocks()
        for problem in problems:
            print(problem)
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
