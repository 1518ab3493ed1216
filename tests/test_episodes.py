"""The lesson's text: notebooks in sync with episodes, class ids that match LABELS, Workbench form."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import LABELS

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import notebooks as notebook_tool  # noqa: E402

EPISODES = sorted((ROOT / "episodes").glob("[0-9]*.md"))
NAME_TO_ID = {name: i for i, name in enumerate(LABELS)}


def test_there_are_episodes_and_one_notebook_each():
    assert len(EPISODES) >= 3
    stems = {p.stem for p in EPISODES}
    assert stems == {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}


def test_notebooks_are_in_sync_with_their_episodes():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "notebooks.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_sync_check_notices_an_edit(tmp_path, monkeypatch):
    episode = tmp_path / "episodes" / "01-x.md"
    episode.parent.mkdir()
    episode.write_text("---\ntitle: X\nteaching: 1\nexercises: 1\n---\n\n```python\nprint(1)\n```\n")
    monkeypatch.setattr(notebook_tool, "EPISODES", episode.parent)
    monkeypatch.setattr(notebook_tool, "NOTEBOOKS", tmp_path / "notebooks")
    assert notebook_tool.main([]) == 0 and notebook_tool.main(["--check"]) == 0
    episode.write_text(episode.read_text().replace("print(1)", "print(2)"))
    assert notebook_tool.main(["--check"]) == 1


@pytest.mark.parametrize("notebook", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_have_no_outputs_and_hide_solutions(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code and all(not c["outputs"] and c["execution_count"] is None for c in code)
    solutions = [c for c in code if "solution" in c["metadata"].get("tags", [])]
    assert solutions, "every episode has at least one challenge with solution code"
    assert all(c["metadata"]["jupyter"]["source_hidden"] for c in solutions)
    assert not any(":::" in "".join(c["source"]) for c in cells)


def class_mentions(text):
    """(id, name-as-written) for each 'NNN · name' in the text."""
    for match in re.finditer(r"\b(\d{1,4}) · ([A-Za-z][^,;:.()\n*`\"]*)", text):
        yield int(match.group(1)), match.group(2).strip()


@pytest.mark.parametrize("episode", EPISODES, ids=lambda p: p.name)
def test_class_ids_in_the_text_match_labels(episode):
    text = episode.read_text()
    mentions = list(class_mentions(text))
    for class_id, written in mentions:
        assert class_id < 1000, f"class id {class_id} is out of range"
        assert written.startswith(LABELS[class_id]), f"{class_id} is {LABELS[class_id]!r}, the text says {written!r}"
    # "name (NNN)" written the other way round must agree too
    for name, class_id in NAME_TO_ID.items():
        for match in re.finditer(re.escape(name) + r"\s*\((\d{1,4})\)", text):
            assert int(match.group(1)) == class_id, f"{name!r} is {class_id}, the text says {match.group(1)}"


def test_the_class_check_catches_a_wrong_id():
    assert list(class_mentions("see 157 · Siberian husky here")) == [(157, "Siberian husky here")]
    assert not "Siberian husky here".startswith(LABELS[157])


@pytest.mark.parametrize("episode", EPISODES, ids=lambda p: p.name)
def test_the_seeds_mistakes_are_not_back(episode):
    text = episode.read_text()
    code = "\n".join(re.findall(r"```python[^\n]*\n(.*?)```", text, flags=re.S))
    assert "pretrained=True" not in code and "COLOR_RGB2BGR" not in code
    assert not re.search(r"(?<![.\w])eval\(", code)
    assert "preprocess_image(" not in code
