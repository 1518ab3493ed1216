"""The helpers' layers: no import cycle, and no module imports one above it.

``LAYERS`` is the order of the package, from the bottom up (CONTRIBUTING.md shows it as a map). A
module may import only modules of the layers below its own, at module level or inside a function;
so there is no cycle, and no import inside a function is needed to dodge one. An import inside a
function is allowed only where it is lazy on purpose, listed in ``LAZY`` with its reason (the
source says why too). The imports are read from the source with ``ast``, without running it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "helpers"

#: The helpers' modules from the bottom up. Modules in one layer do not import each other.
LAYERS: List[Tuple[str, ...]] = [
    ("_files", "solutions"),                       # no helpers imports at all
    ("labels", "downloads"),                       # class names; the lesson's files (no torch)
    ("modelstate", "targets"),                     # a model's lock, eval copy, device and dtype; what a score is
    ("architectures",),                            # layouts of layer outputs, the dry run, target layers
    ("cam", "images", "models", "audit_regions"),  # the CAM mechanism; load_image; load_model; an audit's regions
    ("viz", "trust", "check", "explorer_state",    # pictures; other methods, tests of them; the checker;
     "audit_data"),                                # what an explorer shows; reading a dataset for an audit
    ("shortcut", "setup", "explorer_graphs",       # episode 9's experiment; the set-up; an explorer's maps;
     "audit_sheet", "audit_table"),                # an audit's suspects and contact sheet; its table
    ("claims", "widgets", "audit"),                # the lesson's claims; the explorer's view; a dataset's audit
]
#: ``helpers/__init__.py`` imports each public name on first use (importlib), so it sits above all.
ABOVE_ALL = {"__init__"}
#: Imports inside a function that are lazy on purpose: (module, imported module) -> why.
LAZY: Dict[Tuple[str, str], str] = {
    ("check", "models"): "helpers.models imports torch; the checker must run without it",
    ("setup", "models"): "helpers.models imports torch; the set-up must say that torch is missing",
}


class Import(NamedTuple):
    """One import of a package module by another."""

    importer: str
    imported: str
    line: int
    inside_function: bool

    def __str__(self) -> str:
        where = "inside a function" if self.inside_function else "at module level"
        return f"{self.importer}.py line {self.line} imports {self.imported} {where}"


def package_imports(folder: Path, package: Optional[str] = None) -> List[Import]:
    """Every import of one of ``folder``'s modules by another, at module level and inside functions.

    Relative (``from . import x``, ``from .x import y``) and absolute (``import pkg.x``,
    ``from pkg import x``, ``from pkg.x import y``) forms are read; ``package`` defaults to the
    folder's name.
    """
    package = package or folder.name
    modules = {path.stem for path in folder.glob("*.py")}
    found: List[Import] = []
    for path in sorted(folder.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        inside = _function_nodes(tree)
        for node in ast.walk(tree):
            for target in _targets(node, package, modules):
                if target != path.stem:
                    found.append(Import(path.stem, target, node.lineno, id(node) in inside))
    return found


def _function_nodes(tree: ast.AST) -> Set[int]:
    """The ids of every node inside a function (or a lambda)."""
    ids: Set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            ids.update(id(child) for child in ast.walk(node) if child is not node)
    return ids


def _targets(node: ast.AST, package: str, modules: Set[str]) -> List[str]:
    """The package modules that one import statement imports."""
    if isinstance(node, ast.Import):
        return [alias.name.split(".")[1] for alias in node.names
                if alias.name.startswith(f"{package}.") and alias.name.split(".")[1] in modules]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level == 1 or (node.level == 0 and node.module and node.module.split(".")[0] == package):
        parts = (node.module or "").split(".") if node.level == 1 else node.module.split(".")[1:]
        if parts and parts[0]:
            return [parts[0]] if parts[0] in modules else []
        return [alias.name for alias in node.names if alias.name in modules]         # from . import x
    return []


def find_cycle(imports: Sequence[Import]) -> Optional[List[str]]:
    """One import cycle as a path that ends where it starts (``["a", "b", "a"]``), or None."""
    graph: Dict[str, Set[str]] = {}
    for found in imports:
        graph.setdefault(found.importer, set()).add(found.imported)
    done: Set[str] = set()

    def visit(path: List[str]) -> Optional[List[str]]:
        for following in sorted(graph.get(path[-1], ())):
            if following in path:
                return path[path.index(following):] + [following]
            if following not in done:
                cycle = visit(path + [following])
                if cycle:
                    return cycle
        done.add(path[-1])
        return None

    for start in sorted(graph):
        cycle = None if start in done else visit([start])
        if cycle:
            return cycle
    return None


def layer_problems(imports: Sequence[Import], layers: Sequence[Sequence[str]],
                   above_all: Set[str] = frozenset()) -> List[str]:
    """Each import of a module in the importer's own layer or above it, said in a line."""
    rank = {module: index for index, layer in enumerate(layers) for module in layer}
    problems = []
    for found in imports:
        importer, imported = found.importer, found.imported
        if importer in above_all:
            continue
        if importer not in rank or imported not in rank:
            problems.append(f"{found}, but {importer if importer not in rank else imported} has no layer")
        elif rank[imported] >= rank[importer]:
            problems.append(f"{found}: layer {rank[imported]}, not below {importer}'s layer {rank[importer]}")
    return problems


# --- the helpers ----------------------------------------------------------------------------------

def test_the_helpers_have_no_import_cycle():
    assert find_cycle(package_imports(PACKAGE)) is None


def test_no_module_imports_one_above_or_beside_it():
    assert layer_problems(package_imports(PACKAGE), LAYERS, ABOVE_ALL) == []


def test_every_module_has_one_layer():
    placed = [module for layer in LAYERS for module in layer]
    assert len(placed) == len(set(placed))
    assert set(placed) | ABOVE_ALL == {path.stem for path in PACKAGE.glob("*.py")}


def test_contributing_shows_these_layers():
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    block = text.split("## A map of the package", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    shown = [re.match(r"(\d+)  (\S.*?)  ", line).groups() for line in block.strip().splitlines()]
    assert [(int(number), tuple(names.split(", "))) for number, names in reversed(shown)] == list(enumerate(LAYERS))


def test_imports_inside_functions_are_only_the_lazy_ones():
    inside = {(found.importer, found.imported): str(found) for found in package_imports(PACKAGE)
              if found.inside_function}
    unexplained = [text for pair, text in inside.items() if pair not in LAZY]
    assert unexplained == [], "import at module level, or add the pair to LAZY with the reason"
    assert set(LAZY) <= set(inside), "LAZY lists an import that is no longer there"


# --- the checker catches what it should -----------------------------------------------------------

def write_package(folder: Path, files: Dict[str, str]) -> Path:
    folder.mkdir()
    for name, text in {"__init__": "", **files}.items():
        (folder / f"{name}.py").write_text(text)
    return folder


def test_a_cycle_dodged_inside_a_function_is_found(tmp_path):
    package = write_package(tmp_path / "pkg", {
        "low": "import os\n\n\ndef helper():\n    from .high import thing  # the dodge\n    return thing\n",
        "high": "from .low import helper\n\nthing = 1\n",
        "other": "from pkg import low\n",
    })
    imports = package_imports(package)
    assert sorted(map(tuple, imports)) == [("high", "low", 1, False), ("low", "high", 5, True),
                                           ("other", "low", 1, False)]
    assert find_cycle(imports) in (["high", "low", "high"], ["low", "high", "low"])
    problems = layer_problems(imports, [("low",), ("high", "other")])
    assert problems == ["low.py line 5 imports high inside a function: layer 1, not below low's layer 0"]


def test_each_import_form_is_read_and_a_longer_cycle_found(tmp_path):
    package = write_package(tmp_path / "pkg", {
        "a": "import pkg.b\n",
        "b": "from pkg.c import name\n",
        "c": "from . import a, os_path\n\nname = 1\nos_path = None\n",
        "d": "from . import c\nimport json\n",
    })
    imports = package_imports(package)
    assert sorted((i.importer, i.imported) for i in imports) == [("a", "b"), ("b", "c"), ("c", "a"), ("d", "c")]
    cycle = find_cycle(imports)
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    (package / "c.py").write_text("name = 1\n")                     # the cycle broken
    assert find_cycle(package_imports(package)) is None


def test_modules_beside_each_other_or_without_a_layer_are_named(tmp_path):
    package = write_package(tmp_path / "pkg", {"x": "from . import y\n", "y": "", "z": "from .y import q\n"})
    problems = layer_problems(package_imports(package), [("x", "y")])
    assert problems == ["x.py line 1 imports y at module level: layer 0, not below x's layer 0",
                        "z.py line 1 imports y at module level, but z has no layer"]
