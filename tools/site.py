#!/usr/bin/env python3
"""Build the browsable lesson in _site/: an index and one executed HTML page per episode.

    python tools/site.py [--out _site] [--only 01-images-as-tensors ...]

Each episode's notebook is generated from its Markdown, executed (code runs, figures are
kept), and written as HTML. Every page says which model made its figures: ResNet-50 when its
weights are cached (or LESSON_MODEL says so), otherwise the offline stand-in. The set-up,
reference, instructor and learner-profile pages are rendered too.
"""

from __future__ import annotations

import argparse
import datetime
import html
import os
import re
import shutil
import sys
from pathlib import Path
from typing import List

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter
from nbconvert.filters.markdown import markdown2html

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT))
import notebooks as notebook_tool  # noqa: E402

PAGES = [("learners/setup.md", "setup.html", "Setup"), ("learners/reference.md", "reference.html", "Reference"),
         ("instructors/instructor-notes.md", "instructor-notes.html", "Instructor notes"),
         ("profiles/learner-profiles.md", "learner-profiles.html", "Learner profiles")]
STYLE = """<style>
body.lesson { font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem;
              line-height: 1.5; color: #222; }
.banner { background: #fff6d6; border-left: 4px solid #e0a800; padding: .6rem 1rem; margin: 1rem 0; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .3rem .6rem; }
nav a { margin-right: 1rem; }
</style>"""


def which_model() -> str:
    """The model the executed pages will use, decided once for all of them."""
    if os.environ.get("LESSON_MODEL"):
        return os.environ["LESSON_MODEL"]
    from helpers.models import resnet50_weights_path

    return "resnet50" if resnet50_weights_path().is_file() else "efficientnet_lite0"


def _workbench_to_markdown(text: str) -> str:
    """Strip front matter, turn ::: divs into bold headings, and figures into plain Markdown."""
    text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)
    lines = notebook_tool.convert_divs(text.splitlines(), [])
    text = "\n".join(lines)
    return notebook_tool.plain_figures(text)


def _page(title: str, body: str) -> str:
    nav = "<nav><a href='index.html'>Lesson home</a>" + "".join(
        f"<a href='{target}'>{name}</a>" for _, target, name in PAGES) + "</nav>"
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"{STYLE}</head><body class='lesson'>{nav}{body}</body></html>")


def build_episode(path: Path, out: Path, model: str) -> Path:
    notebook = notebook_tool.episode_to_notebook(path)
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = cell.source.replace("](../episodes/fig/", "](fig/")
    today = datetime.date.today().isoformat()
    notebook.cells.insert(1, nbformat.v4.new_markdown_cell(
        f"<div class='banner'>Executed on {today} with the model <b>{model}</b>. The figures, "
        f"predictions and numbers on this page were made by that model"
        + (" (the offline stand-in: ResNet-50's differ in detail)." if model != "resnet50" else ".")
        + "</div>"))
    os.environ["LESSON_MODEL"] = model
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"   # figures into the page
    NotebookClient(notebook, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    exporter = HTMLExporter(template_name="lab")
    body, _ = exporter.from_notebook_node(notebook)
    target = out / f"{path.stem}.html"
    target.write_text(body, encoding="utf-8")
    return target


def build_index(out: Path) -> Path:
    """index.md (with its schedule) as the home page, its episode links pointing at the HTML pages."""
    intro = markdown2html(_workbench_to_markdown((ROOT / "index.md").read_text(encoding="utf-8")))
    intro = re.sub(r'href="episodes/([\w-]+)\.md"', r'href="\1.html"', intro)
    intro = re.sub(r'href="(?:learners|profiles|instructors)/([\w-]+)\.md"', r'href="\1.html"', intro)
    target = out / "index.html"
    target.write_text(_page(_config_title(), f"<h1>{html.escape(_config_title())}</h1>{intro}"), encoding="utf-8")
    return target


def _config_title() -> str:
    match = re.search(r"^title:\s*'(.*)'", (ROOT / "config.yaml").read_text(encoding="utf-8"), flags=re.M)
    return match.group(1) if match else "The GradCAM lesson"


def build_pages(out: Path) -> None:
    for source, target, title in PAGES:
        text = _workbench_to_markdown((ROOT / source).read_text(encoding="utf-8"))
        (out / target).write_text(_page(title, f"<h1>{html.escape(title)}</h1>" + markdown2html(text)),
                                  encoding="utf-8")


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "_site")
    parser.add_argument("--only", nargs="*", help="episode stems to build (default: all)")
    args = parser.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    if (ROOT / "episodes" / "fig").is_dir():
        shutil.copytree(ROOT / "episodes" / "fig", out / "fig", dirs_exist_ok=True)
    model = which_model()
    for path in notebook_tool.episodes():
        if args.only and path.stem not in args.only:
            continue
        print(f"executing {path.name} with {model} ...", flush=True)
        build_episode(path, out, model)
    build_pages(out)
    print(f"wrote {build_index(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
