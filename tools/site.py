#!/usr/bin/env python3
"""Build the browsable lesson in _site/: an index and one executed HTML page per episode.

    python tools/site.py [--out _site] [--only 01-images-as-tensors ...]

Each episode's page is generated from its Markdown (with its instructor notes, which the
learners' notebooks leave out) and shows the outputs of the learners' notebook executed as Run
All runs it (tools/runall.py): a run that a recent test run kept is reused when the notebook
and the helpers are unchanged since (``runall.saved_run``), so that after `make test` the site
takes seconds. A figure gets the alt text its episode's marker gives it (tools/outputs.py); a
figure drawn by an unmarked cell is named in the build's log. Every page says which model made
its figures: ResNet-50 when its weights are cached (or LESSON_MODEL says so), otherwise the
offline stand-in. The set-up, reference, instructor, learner-profile and licence pages are
rendered too. ``--jobs N`` runs N notebooks at a time (default 1: the machine's other cores
stay free).

The site works without internet: MathJax is served from ``_site/assets/`` (vendored in
``tools/vendor/``), no require.js or widget JavaScript is loaded, and each widget (the
explorer) is drawn as it was first shown: its controls and its picture, from the state saved
when the notebook ran. Episode pages link to the previous and next episode and home.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import html
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Optional

import jinja2
import nbformat
from nbconvert import HTMLExporter
from nbconvert.filters.markdown import markdown2html

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT))
import notebooks as notebook_tool  # noqa: E402
import outputs as output_tool  # noqa: E402
from runall import PatientClient, local_kernels  # noqa: E402

VENDOR = ROOT / "tools" / "vendor"
MATHJAX = "assets/mathjax/tex-chtml.js"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
PAGES = [("learners/setup.md", "setup.html", "Setup"), ("learners/reference.md", "reference.html", "Reference"),
         ("instructors/instructor-notes.md", "instructor-notes.html", "Instructor notes"),
         ("profiles/profiles.md", "profiles.html", "Learner profiles")]
OTHER_PAGES = {"LICENSE.md": ("license.html", "Licenses"),
               "CODE_OF_CONDUCT.md": ("code-of-conduct.html", "Code of conduct")}
STYLE = """<style>
body.lesson { font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem;
              line-height: 1.5; color: #222; }
.banner { background: #fff6d6; border-left: 4px solid #e0a800; padding: .6rem 1rem; margin: 1rem 0; }
.instructor-note { background: #eef4ff; border-left: 4px solid #3d6fd8; padding: .2rem 1rem; margin: 1rem 0; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .3rem .6rem; }
nav.lesson-nav { display: flex; flex-wrap: wrap; gap: .4rem 1rem; padding: .6rem 0; margin: 0 0 1rem;
                 border-bottom: 1px solid #ddd; font-family: system-ui, sans-serif; }
nav.lesson-nav.bottom { border-top: 1px solid #ddd; border-bottom: none; margin: 2rem 0 1rem; }
nav.lesson-nav .next { margin-left: auto; }
main > nav.lesson-nav { padding-left: 1rem; padding-right: 1rem; }
details.solution-code > summary { cursor: pointer; font: bold 14px system-ui, sans-serif; margin: .4rem 0 .4rem 104px; }
.static-widget { border: 1px solid #ccc; border-radius: 4px; padding: .6rem; }
.static-widget .widget-note { font-size: 90%; color: #555; margin-bottom: .4rem; }
.static-widget .row { display: flex; flex-wrap: wrap; gap: .4rem 1rem; align-items: center; margin: .2rem 0; }
.static-widget img { max-width: 100%; }
</style>"""
MATHJAX_CONFIG = """<script>
window.MathJax = {tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], displayMath: [['$$', '$$'], ['\\\\[', '\\\\]']],
                        processEscapes: true},
                  options: {ignoreHtmlClass: 'jp-CodeCell|jp-OutputArea'}};
</script>"""
# The lab template without anything from a CDN: local MathJax, no require.js, no widget manager
TEMPLATE = """{%- extends 'index.html.j2' -%}
{% block html_head_js_requirejs %}{% endblock %}
{% block jupyter_widgets %}{% endblock %}
{% block html_head_js_mermaidjs %}{% endblock %}
{% block html_head_js_mathjax %}""" + MATHJAX_CONFIG + """
<script id="MathJax-script" defer src="{{ resources.lesson_mathjax }}"></script>{% endblock %}
{% block extra_css %}""" + STYLE + """{% endblock %}
{% block body_header %}{{ super() }}{{ resources.lesson_nav }}{% endblock %}
{% block body_footer %}{{ resources.lesson_nav_bottom }}{{ super() }}{% endblock %}
{% block data_png scoped %}
{%- if output.metadata.get('lesson_alt') -%}
<div class="jp-RenderedImage jp-OutputArea-output {{ extra_class }}">
<img alt="{{ output.metadata.lesson_alt | escape_html }}" src="data:image/png;base64,{{ output.data['image/png'] | escape_html }}">
</div>
{%- else -%}{{ super() }}{%- endif -%}
{% endblock data_png %}
{% block any_cell %}
{%- if 'solution' in cell.metadata.get('tags', []) -%}
<details class="solution-code"><summary>Solution: the code and its output</summary>
{{ super() }}
</details>
{%- else -%}{{ super() }}{%- endif -%}
{% endblock any_cell %}
"""


def which_model() -> str:
    """The model the executed pages will use, decided once for all of them."""
    return output_tool.which_model()


def _workbench_to_markdown(text: str) -> str:
    """Strip front matter, turn ::: divs into bold headings, and figures into plain Markdown."""
    text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)
    lines = notebook_tool.convert_divs(text.splitlines(), [])
    text = "\n".join(lines)
    return notebook_tool.plain_figures(text)


def _nav(current: Optional[str], bottom: bool = False) -> str:
    """Home, the previous and next episode around ``current`` (an episode stem), and the pages."""
    stems = [p.stem for p in notebook_tool.episodes()]
    links = ["<a href='index.html'>Lesson home</a>"]
    if current in stems:
        at = stems.index(current)
        if at > 0:
            links.append(f"<a class='previous' rel='prev' href='{stems[at - 1]}.html'>← Previous: "
                         f"{html.escape(_episode_title(stems[at - 1]))}</a>")
        if at + 1 < len(stems):
            links.append(f"<a class='next' rel='next' href='{stems[at + 1]}.html'>Next: "
                         f"{html.escape(_episode_title(stems[at + 1]))} →</a>")
    if not bottom:
        links[1:1] = [f"<a href='{target}'>{name}</a>" for _, target, name in PAGES]
    return f"<nav class='lesson-nav{' bottom' if bottom else ''}'>{''.join(links)}</nav>"


def _episode_title(stem: str) -> str:
    path = notebook_tool.EPISODES / f"{stem}.md"
    match = re.search(r"^title:\s*['\"]?(.*?)['\"]?\s*$", path.read_text(encoding="utf-8"), flags=re.M)
    return match.group(1) if match else stem


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"{STYLE}</head><body class='lesson'>{_nav(None)}{body}</body></html>")


def local_links(text: str) -> str:
    """Links to the lesson's Markdown files (``episodes/03-gradcam-by-hand.md``, ``../learners/setup.md``,
    ``LICENSE.md``) as links to their pages in the site."""
    names = {Path(source).name: target for source, target, _ in PAGES}
    names.update({name: target for name, (target, _) in OTHER_PAGES.items()})
    self_study = {page.name for page in notebook_tool.self_study_pages()}     # built like the episodes

    def replace(match: re.Match) -> str:
        path, anchor = match.group(2), match.group(3) or ""
        name = path.rsplit("/", 1)[-1]
        if name in names:
            target = names[name]
        elif (notebook_tool.EPISODES / name).is_file() or name in self_study:
            target = name[:-3] + ".html"
        else:
            return match.group(0)
        return f"{match.group(1)}{target}{anchor}{match.group(4)}"

    return re.sub(r"""(href=["'])(?![a-z]+:)([^"'#]*?\.md)(#[^"']*)?(["'])""", replace, text)


# ---------------------------------------------------------------- widgets, drawn without JavaScript

def _widget_html(state: Dict[str, dict], model_id: str, depth: int = 0) -> str:
    """One widget from the saved widget state, as plain HTML: boxes, labels, pictures, and the
    controls as disabled form elements showing their value."""
    model = state.get(model_id)
    if model is None or depth > 20:
        return ""
    name, values = model.get("model_name", ""), model.get("state", {})
    description = html.escape(str(values.get("description", "")))
    label = f"<label>{description} </label>" if description else ""
    if name in ("VBoxModel", "BoxModel", "GridBoxModel", "HBoxModel", "AccordionModel", "TabModel"):
        children = "".join(_widget_html(state, child.replace("IPY_MODEL_", ""), depth + 1)
                           for child in values.get("children", []))
        return f"<div class='{'row' if name == 'HBoxModel' else 'column'}'>{children}</div>"
    if name == "ImageModel":
        data = next((b["data"] for b in model.get("buffers", []) if b.get("path") == ["value"]), None)
        if not data:
            return ""
        kind = values.get("format", "png")
        return f"<img alt='{description or 'the picture the widget showed'}' src='data:image/{kind};base64,{data}'>"
    if name in ("HTMLModel", "HTMLMathModel"):
        return f"<div>{values.get('value', '')}</div>"
    if name == "LabelModel":
        return f"<div>{html.escape(str(values.get('value', '')))}</div>"
    if name in ("DropdownModel", "SelectModel", "RadioButtonsModel", "ToggleButtonsModel"):
        options = values.get("_options_labels", [])
        index = values.get("index")
        chosen = options[index] if isinstance(index, int) and 0 <= index < len(options) else ""
        return f"<span>{label}<select disabled><option>{html.escape(chosen)}</option></select></span>"
    if name in ("FloatSliderModel", "IntSliderModel"):
        return (f"<span>{label}<input type='range' disabled min='{values.get('min', 0)}' "
                f"max='{values.get('max', 1)}' step='{values.get('step', 1)}' value='{values.get('value', 0)}'> "
                f"{values.get('value', '')}</span>")
    if name in ("TextModel", "ComboboxModel", "TextareaModel"):
        placeholder = html.escape(str(values.get("placeholder", "")))
        return (f"<span>{label}<input type='text' disabled placeholder='{placeholder}' "
                f"value='{html.escape(str(values.get('value', '')))}'></span>")
    if name in ("ButtonModel", "FileUploadModel", "ToggleButtonModel"):
        return f"<button disabled>{description or 'button'}</button>"
    if name == "CheckboxModel":
        checked = " checked" if values.get("value") else ""
        return f"<label><input type='checkbox' disabled{checked}> {description}</label>"
    return ""


def static_widgets(notebook: nbformat.NotebookNode) -> int:
    """Replace each widget output by a picture of it as first drawn; returns how many.

    The saved widget state (what nbclient keeps) is dropped afterwards, so that the page loads
    no widget JavaScript. A widget's pictures get the alt text of its cell's marker, if any."""
    state = notebook.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    count = 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if not view:
                continue
            drawn = _widget_html(state, view.get("model_id", ""))
            alt = cell.get("metadata", {}).get("lesson_alt")
            if alt:
                drawn = re.sub(r"<img alt='[^']*'", f"<img alt='{html.escape(alt, quote=True)}'", drawn)
            output["data"] = {"text/html": (
                "<div class='static-widget'><div class='widget-note'>A picture of this interactive "
                "widget as it was first drawn. Run the notebook in JupyterLab to use it.</div>"
                f"{drawn}</div>")}
            count += 1
    notebook.metadata.pop("widgets", None)
    return count


# ---------------------------------------------------------------- pages

def execute(notebook: nbformat.NotebookNode, workdir: Path) -> None:
    """Run the notebook in a fresh kernel that talks over a local socket where the system has
    them (no warning about unencrypted TCP), over TCP elsewhere (Windows)."""
    with local_kernels() as manager:
        PatientClient(notebook, timeout=900, kernel_name="python3", kernel_manager_class=manager,
                      resources={"metadata": {"path": str(workdir)}}).execute()


def with_outputs(path: Path, notebook: nbformat.NotebookNode, model: str, reuse: bool = True) -> List[str]:
    """Fill the site's notebook of ``path`` with the outputs of the learners' notebook run with
    ``model`` (tools/outputs.py's ``executed``: a test run's, when it can), cell by cell, matched by
    code; execute the site's notebook itself only if a cell has no match (an instructor note's
    code). Image outputs get their marker's alt text. Returns the cells that drew a figure
    without a marker, for the log."""
    page = output_tool.read_page(path)
    run = output_tool.executed(path, model, reuse)
    cells = output_tool.notebook_cells(run, page)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    by_code = {}
    for number, source in enumerate(page.cells):
        by_code.setdefault(source.strip(), []).append(number)
    pairs = []
    for cell in code:
        numbers = by_code.get(notebook_tool.episode_code(cell.source).strip(), [])
        if not numbers or numbers[0] not in cells:
            break
        pairs.append((cell, numbers.pop(0)))
    if len(pairs) < len(code):                  # a cell the learners' notebook lacks: run this notebook
        print(f"  {path.name}: a cell is not in the learners' notebook; executing the page itself", flush=True)
        os.environ["LESSON_MODEL"] = model
        os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"   # figures into the page
        execute(notebook, ROOT / "notebooks")
        pairs = [(cell, None) for cell in code]
    else:
        for cell, number in pairs:
            cell.outputs = cells[number].outputs
            cell.execution_count = cells[number].get("execution_count")
        if "widgets" in run.notebook.metadata:
            notebook.metadata["widgets"] = run.notebook.metadata["widgets"]
    alts = {entry.cell: entry.spec.alt for entry in page.marked if entry.spec and entry.spec.figure}
    unmarked = []
    for cell, number in pairs:
        drew = [o for o in cell.get("outputs", []) if {"image/png", WIDGET_VIEW} & set(o.get("data", {}))]
        if not drew:
            continue
        alt = alts.get(number)
        if alt is None:
            unmarked.append(f"cell {number + 1 if number is not None else '?'}: {cell.source.splitlines()[0][:60]!r}")
            alt = "A figure drawn by the code above; the text around it says what it shows."
        cell.metadata["lesson_alt"] = alt
        for output in drew:
            output.setdefault("metadata", {})["lesson_alt"] = alt
    return unmarked


def build_episode(path: Path, out: Path, model: str, reuse: bool = True) -> Path:
    notebook = notebook_tool.render(path, notebook_tool.SITE)
    today = datetime.date.today().isoformat()
    notebook.cells.insert(1, nbformat.v4.new_markdown_cell(
        f"<div class='banner'>Executed on {today} with the model <b>{model}</b>. The figures, "
        f"predictions and numbers on this page were made by that model"
        + (" (the offline stand-in: ResNet-50's differ in detail)." if model != "resnet50" else ".")
        + "</div>"))
    unmarked = with_outputs(path, notebook, model, reuse)
    if unmarked:
        print(f"  {path.name}: figures without alt text of their own (mark their cells, tools/outputs.py): "
              + "; ".join(unmarked), flush=True)
    static_widgets(notebook)
    exporter = HTMLExporter(template_name="lab", extra_loaders=[jinja2.DictLoader({"lesson.html.j2": TEMPLATE})],
                            template_file="lesson.html.j2")
    body, _ = exporter.from_notebook_node(notebook, resources={
        "lesson_mathjax": MATHJAX, "lesson_nav": _nav(path.stem), "lesson_nav_bottom": _nav(path.stem, bottom=True)})
    target = out / f"{path.stem}.html"
    target.write_text(local_links(body), encoding="utf-8")
    return target


def build_index(out: Path) -> Path:
    """index.md (with its schedule) as the home page, its links pointing at the site's pages."""
    intro = markdown2html(_workbench_to_markdown((ROOT / "index.md").read_text(encoding="utf-8")))
    target = out / "index.html"
    target.write_text(local_links(_page(_config_title(), f"<h1>{html.escape(_config_title())}</h1>{intro}")),
                      encoding="utf-8")
    return target


def _config_title() -> str:
    match = re.search(r"^title:\s*'(.*)'", (ROOT / "config.yaml").read_text(encoding="utf-8"), flags=re.M)
    return match.group(1) if match else "The GradCAM lesson"


def build_pages(out: Path) -> None:
    pages = PAGES + [(source, target, title) for source, (target, title) in OTHER_PAGES.items()]
    for source, target, title in pages:
        if not (ROOT / source).is_file():
            continue
        text = _workbench_to_markdown((ROOT / source).read_text(encoding="utf-8"))
        body = f"<h1>{html.escape(title)}</h1>" + markdown2html(text)
        (out / target).write_text(local_links(_page(title, body)), encoding="utf-8")


def copy_assets(out: Path) -> None:
    """The episodes' figures and MathJax, so that no page needs the internet."""
    if (ROOT / "episodes" / "fig").is_dir():
        shutil.copytree(ROOT / "episodes" / "fig", out / "fig", dirs_exist_ok=True)
    mathjax = VENDOR / "mathjax"
    if not (mathjax / "tex-chtml.js").is_file():
        raise SystemExit(f"MathJax is missing from {mathjax}: see tools/vendor/README.md")
    shutil.copytree(mathjax, out / "assets" / "mathjax", dirs_exist_ok=True)


def _build_one(job) -> Path:
    path, out, model, reuse = job
    print(f"building {path.name} with {model} ...", flush=True)
    return build_episode(path, out, model, reuse)


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "_site")
    parser.add_argument("--only", nargs="*", help="episode stems to build (default: all)")
    parser.add_argument("--no-reuse", action="store_true", help="run every notebook, even if a test run kept it")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks run at the same time (default 1)")
    args = parser.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    copy_assets(out)
    model = which_model()
    problem = output_tool.model_problem(model)
    if problem:
        raise SystemExit(problem)
    paths = [path for path in notebook_tool.episodes() + notebook_tool.self_study_pages()
             if not args.only or path.stem in args.only]
    if args.jobs > 1:
        with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
            for target in pool.map(_build_one, [(path, out, model, not args.no_reuse) for path in paths]):
                print(f"wrote {target}", flush=True)
    else:
        for path in paths:
            print(f"wrote {_build_one((path, out, model, not args.no_reuse))}", flush=True)
    build_pages(out)
    print(f"wrote {build_index(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
