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


# --- the episode checker: every episode has the Workbench parts a lesson needs ---------------

def _divs(text):
    """(kind, body) for every top-level fenced div, checking that fences balance."""
    stack, found = [], []
    for number, line in enumerate(text.splitlines(), 1):
        opened = notebook_tool.OPEN_DIV.match(line)
        if opened:
            stack.append((opened.group(1), number))
        elif notebook_tool.CLOSE_DIV.match(line):
            assert stack, f"line {number}: a ::: fence closes a div that was never opened"
            kind, start = stack.pop()
            found.append((kind, start, number, stack[-1][0] if stack else None))
    assert not stack, f"divs left open: {stack}"
    return found


@pytest.mark.parametrize("episode", EPISODES, ids=lambda p: p.name)
def test_episode_has_what_a_workbench_episode_needs(episode):
    text = episode.read_text()
    front = re.match(r"---\n(.*?)\n---\n", text, flags=re.S)
    assert front, "front matter missing"
    fields = dict(line.split(":", 1) for line in front.group(1).splitlines() if ":" in line)
    assert fields["title"].strip()
    assert int(fields["teaching"]) > 0 and int(fields["exercises"]) > 0
    divs = _divs(text)
    kinds = [kind for kind, *_ in divs]
    for needed in ("questions", "objectives", "keypoints"):
        assert kinds.count(needed) == 1, f"needs one {needed} block"
    assert all(parent == "challenge" for kind, _, _, parent in divs if kind == "solution"), "solution outside a challenge"
    challenges = [d for d in divs if d[0] == "challenge"]
    solved = {parent_line for kind, start, end, parent in divs if kind == "solution"
              for parent_line in [next(s for k, s, e, _ in challenges if s < start and e > end)]}
    assert challenges and len(solved) == len(challenges), "every challenge needs a solution"


@pytest.mark.parametrize("episode", EPISODES, ids=lambda p: p.name)
def test_every_figure_has_alt_text_and_exists(episode):
    text = episode.read_text()
    for match in re.finditer(r"!\[([^\]]*)\]\(([^)]+)\)(\{[^}]*\})?", text):
        caption, source, attributes = match.groups()
        assert attributes and re.search(r"alt='[^']{20,}'", attributes), f"{source} has no alt text"
        assert (episode.parent / source).is_file(), f"{source} is missing"


def test_the_episode_checker_catches_problems():
    with pytest.raises(AssertionError, match="open"):
        _divs("::: challenge\ntext\n")
    with pytest.raises(AssertionError, match="never opened"):
        _divs("text\n:::\n")


def test_config_and_index_list_the_episodes_with_their_minutes():
    config = (ROOT / "config.yaml").read_text()
    for needed in ("carpentry: 'incubator'", "life_cycle:", "license: 'CC-BY 4.0'", "title:"):
        assert needed in config
    listed = re.findall(r"^- (\d\d-[\w-]+\.md)$", config, flags=re.M)
    assert listed == [p.name for p in EPISODES]
    index = (ROOT / "index.md").read_text()
    for episode in EPISODES:
        fields = dict(line.split(":", 1) for line in episode.read_text().split("\n---", 1)[0].splitlines() if ":" in line)
        row = re.search(rf"\(episodes/{episode.name}\) \| (\d+) \| (\d+) \|", index)
        assert row, f"{episode.name} missing from the schedule"
        assert (int(row.group(1)), int(row.group(2))) == (int(fields["teaching"]), int(fields["exercises"]))
    for page in ("learners/setup.md", "learners/reference.md", "instructors/instructor-notes.md",
                 "profiles/learner-profiles.md", "LICENSE.md", "CODE_OF_CONDUCT.md", "CONTRIBUTING.md", "CITATION.cff"):
        assert (ROOT / page).is_file(), page


def test_instructor_notes_cover_the_usual_stumbles():
    notes = (ROOT / "instructors" / "instructor-notes.md").read_text()
    for topic in ("RGB versus BGR", "Normalisation", "Wrong class ids", "Hooks piling up",
                  "Widgets that do not render", "torch installs"):
        assert f"**{topic}" in notes, topic


@pytest.mark.parametrize("handout", sorted((ROOT / "notebooks" / "handouts").glob("*.ipynb")), ids=lambda p: p.name)
def test_handouts_keep_only_the_setup_code(handout):
    full = json.loads((ROOT / "notebooks" / handout.name).read_text())
    cells = json.loads(handout.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert len(code) == sum(c["cell_type"] == "code" for c in full["cells"])
    for cell in code:
        tagged = "setup" in cell["metadata"].get("tags", [])
        assert bool("".join(cell["source"]).strip()) == tagged
        assert not cell["outputs"]


@pytest.mark.parametrize("episode", EPISODES, ids=lambda p: p.name)
def test_code_fences_are_plain_one_word_fences(episode):
    """Pandoc (the Workbench) reads a backtick fence's info string as one word, or not as code at all."""
    for number, line in enumerate(episode.read_text().splitlines(), 1):
        if line.startswith("```"):
            assert re.fullmatch(r"```[\w-]*", line.rstrip()), f"line {number}: {line!r} is not a one-word fence"
