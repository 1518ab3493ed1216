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
from test_notebook_format import hidden_cells  # noqa: E402

EPISODES = sorted((ROOT / "episodes").glob("[0-9]*.md"))
#: The self-study pages (learners/NAME.md with ``self-study: true``): lessons outside the schedule,
#: held to the same rules as the episodes where a rule is about the text.
SELF_STUDY = notebook_tool.self_study_pages()
PAGES = EPISODES + SELF_STUDY
#: The self-study pages written as Workbench lessons, held to the episodes' form too: questions,
#: objectives, keypoints, challenges with solutions, a multiple-choice question, code lines of at
#: most 79 characters. Add a page here when it is written that way.
LESSONS = EPISODES + [ROOT / "learners" / name for name in
                      ("gradcam-in-depth.md", "testing-explanations.md", "when-gradcam-misses.md")]
NAME_TO_ID = {name: i for i, name in enumerate(LABELS)}


def _page_id(path):
    return f"{path.parent.name}/{path.name}"


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
    solutions = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and "solution" in c["metadata"].get("tags", [])]
    assert solutions, "every episode has at least one challenge with solution code"
    assert set(solutions) <= hidden_cells(cells), "a solution's code shows before its heading is opened"
    assert not any(":::" in "".join(c["source"]) for c in cells)


def class_mentions(text):
    """(id, name-as-written) for each 'NNN · name' in the text."""
    for match in re.finditer(r"\b(\d{1,4}) · ([A-Za-z][^,;:.()\n*`\"]*)", text):
        yield int(match.group(1)), match.group(2).strip()


@pytest.mark.parametrize("episode", PAGES, ids=_page_id)
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


@pytest.mark.parametrize("episode", PAGES, ids=_page_id)
def test_the_seeds_mistakes_are_not_back(episode):
    text = episode.read_text()
    code = "\n".join(re.findall(r"```python[^\n]*\n(.*?)```", text, flags=re.S))
    assert "pretrained=True" not in code and "COLOR_RGB2BGR" not in code
    assert not re.search(r"(?<![.\w])eval\(", code)
    assert "preprocess_image(" not in code
    # show_cam_on_image returns BGR unless told otherwise: every call in the episodes says use_rgb=True;
    # a self-study page may show the BGR result, but only by saying use_rgb=False out loud
    for call in re.findall(r"show_cam_on_image\(([^)]*)\)", code):
        allowed = ("use_rgb=True",) if episode in EPISODES else ("use_rgb=True", "use_rgb=False")
        assert any(a in call for a in allowed), f"show_cam_on_image({call}) returns BGR; pass use_rgb=True"
    if not episode.name.startswith("03-"):
        return
    # episode 3's by-hand GradCAM is written in plain steps (issue 9): no dict.update in a lambda,
    # no tuple unpacking with a trailing comma, no None-indexing to add axes
    assert not re.search(r"lambda[^\n]*\.update\(", code)
    assert not re.search(r"^\s*\w+\s*,\s*=", code, flags=re.M)
    assert "[None, None]" not in code


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


def _front_fields(text):
    front = re.match(r"---\n(.*?)\n---\n", text, flags=re.S)
    assert front, "front matter missing"
    return {key.strip(): value.strip() for key, value in
            (line.split(":", 1) for line in front.group(1).splitlines() if ":" in line)}


@pytest.mark.parametrize("episode", LESSONS, ids=_page_id)
def test_episode_has_what_a_workbench_episode_needs(episode):
    text = episode.read_text()
    fields = _front_fields(text)
    assert fields["title"].strip()
    if episode in EPISODES:
        assert int(fields["teaching"]) > 0 and int(fields["exercises"]) > 0
    else:               # outside the schedule: no minutes, and it says what it is
        assert fields["self-study"].lower() == "true" and "teaching" not in fields
    divs = _divs(text)
    kinds = [kind for kind, *_ in divs]
    for needed in ("questions", "objectives", "keypoints"):
        assert kinds.count(needed) == 1, f"needs one {needed} block"
    assert all(parent == "challenge" for kind, _, _, parent in divs if kind == "solution"), "solution outside a challenge"
    challenges = [d for d in divs if d[0] == "challenge"]
    solved = {parent_line for kind, start, end, parent in divs if kind == "solution"
              for parent_line in [next(s for k, s, e, _ in challenges if s < start and e > end)]}
    assert challenges and len(solved) == len(challenges), "every challenge needs a solution"


@pytest.mark.parametrize("episode", PAGES, ids=_page_id)
def test_every_figure_has_alt_text_and_exists(episode):
    text = episode.read_text()
    for match in re.finditer(r"!\[([^\]]*)\]\(([^)]+)\)(\{[^}]*\})?", text):
        caption, source, attributes = match.groups()
        # double quotes: in single quotes an apostrophe ends the alt text early, and the Workbench's
        # pandoc then prints the braces as text (tests/test_workbench_site.py checks the built pages)
        assert attributes and re.fullmatch(r'\{alt="[^"]{20,}"\}', attributes), f"{source}: no alt text in double quotes"
        assert (episode.parent / source).is_file(), f"{source} is missing"


OPTION = re.compile(r"^- \*\*([A-D])\.\*\* \S")


def multiple_choice(text):
    """For each challenge with lettered options: (letters offered, letters its solution discusses).

    The format (see CONTRIBUTING.md): options are list items ``- **A.** ...`` in the challenge,
    before its solution; the solution discusses each one, starting with ``**A.**``.
    """
    lines = text.splitlines()
    divs = _divs(text)
    found = []
    for kind, start, end, _ in divs:
        if kind != "challenge":
            continue
        inner = [(s, e) for k, s, e, parent in divs if k == "solution" and start < s and e < end]
        in_solution = {n for s, e in inner for n in range(s, e + 1)}
        options = [m.group(1) for n in range(start, end)
                   if n not in in_solution and (m := OPTION.match(lines[n - 1]))]
        if not options:
            continue
        solution = "\n".join(lines[n - 1] for n in sorted(in_solution))
        found.append(("".join(options), "".join(x for x in "ABCD" if f"**{x}.**" in solution)))
    return found


def is_complete(offered, discussed):
    return offered in ("ABC", "ABCD") and discussed == offered


@pytest.mark.parametrize("episode", LESSONS, ids=_page_id)
def test_every_episode_has_a_multiple_choice_question_explained_option_by_option(episode):
    questions = multiple_choice(episode.read_text())
    assert questions, ("needs a multiple-choice challenge: options '- **A.** ...' (3 or 4), "
                       "and a solution discussing each as '**A.** Right/Wrong ...'")
    for offered, discussed in questions:
        assert offered in ("ABC", "ABCD"), f"options must be A, B, C (and D) in order, found {offered}"
        assert discussed == offered, f"the solution discusses {discussed or 'none'} of the options {offered}"


def test_the_multiple_choice_check_catches_a_solution_that_skips_an_option():
    question = ("::: challenge\nWhich?\n\n- **A.** one\n- **B.** two\n- **C.** three\n\n"
                "::: solution\n**A.** Wrong.\n**B.** Right.\n:::\n:::\n")
    assert multiple_choice(question) == [("ABC", "AB")]
    assert not is_complete(*multiple_choice(question)[0])
    fixed = question.replace("**B.** Right.", "**B.** Right.\n**C.** Wrong.")
    assert is_complete(*multiple_choice(fixed)[0])
    # options written inside the solution, or only two options, do not count
    assert multiple_choice("::: challenge\nQ\n::: solution\n- **A.** x\n:::\n:::\n") == []
    assert not is_complete(*multiple_choice("::: challenge\n- **A.** x\n- **B.** y\n"
                                            "::: solution\n**A.** **B.**\n:::\n:::\n")[0])


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
                 "profiles/profiles.md", "LICENSE.md", "CODE_OF_CONDUCT.md", "CONTRIBUTING.md", "CITATION.cff"):
        assert (ROOT / page).is_file(), page


def schedule_rows(index):
    """(start minutes, label, teaching, exercises, total minutes) for each row of the index's schedule."""
    rows = []
    for match in re.finditer(r"^\|\s*(\d+):(\d\d)\s*\|\s*(.*?)\s*\|\s*(\d*)\s*\|\s*(\d*)\s*\|\s*(\d*)\s*(?:min)?\s*\|$",
                             index, flags=re.M):
        hours, minutes, label, teach, exercise, total = match.groups()
        rows.append((int(hours) * 60 + int(minutes), label, int(teach or 0), int(exercise or 0), int(total or 0)))
    return rows


def check_schedule(rows):
    """Each row's total is its teaching plus exercises, and each row starts when the one before ends."""
    assert rows and rows[0][0] == 0, "the schedule starts at 0:00"
    for (start, label, teach, exercise, total), following in zip(rows, rows[1:]):
        if teach or exercise:
            assert total == teach + exercise, f"{label}: {teach} + {exercise} is not {total}"
        assert following[0] == start + total, f"{following[1]} starts at {following[0]} min, not {start + total}"
    assert any(label.startswith("*") and "reak" in label for _, label, *_ in rows), "the schedule shows a break"


def test_the_schedule_adds_up_and_has_breaks():
    index = (ROOT / "index.md").read_text()
    paths = index.split("## Schedule", 1)[1].split("\n### ")[1:]      # one table per path (tools/schedule.py)
    assert paths, "the schedule has a table per path"
    for table in paths:
        rows = schedule_rows(table)
        assert len(rows) >= 4, "a schedule lists its episodes, a break and the finish"
        check_schedule(rows)
        total_row = re.search(r"\*\*total\*\* \| (\d+) \| (\d+) \|", table)
        assert total_row and (int(total_row.group(1)), int(total_row.group(2))) == (
            sum(r[2] for r in rows), sum(r[3] for r in rows))
    assert len(schedule_rows(paths[-1])) >= len(EPISODES) + 2, "the last path is the full day: every episode"


def test_the_instructor_notes_timings_match_the_episodes():
    notes = (ROOT / "instructors" / "instructor-notes.md").read_text()
    for episode in EPISODES:
        fields = dict(line.split(":", 1) for line in episode.read_text().split("\n---", 1)[0].splitlines() if ":" in line)
        row = re.search(rf"^\| {int(episode.name[:2])}\. [^|\n]*\| (\d+) \| (\d+) \|", notes, flags=re.M)
        assert row, f"{episode.name} has no row in the instructor notes' timing table (python tools/schedule.py)"
        assert (int(row.group(1)), int(row.group(2))) == (int(fields["teaching"]), int(fields["exercises"])), episode.name


def test_the_schedule_check_catches_a_wrong_sum():
    good = "| 0:00 | [1. A](episodes/a.md) | 10 | 5 | 15 min |\n| 0:15 | *Break* | | | 10 min |\n| 0:25 | Finish | | | |"
    check_schedule(schedule_rows(good))
    with pytest.raises(AssertionError, match="starts at 30"):
        check_schedule(schedule_rows(good.replace("0:25", "0:30")))
    with pytest.raises(AssertionError, match="is not 16"):
        check_schedule(schedule_rows(good.replace("15 min", "16 min")))
    with pytest.raises(AssertionError, match="break"):
        check_schedule(schedule_rows(good.replace("*Break*", "Chat")))


def test_instructor_notes_cover_the_usual_stumbles():
    notes = (ROOT / "instructors" / "instructor-notes.md").read_text()
    for topic in ("RGB versus BGR", "Normalisation", "Wrong class ids", "Hooks piling up",
                  "Widgets that do not render", "torch installs", "Re-running a cell"):
        assert f"**{topic}" in notes, topic


@pytest.mark.parametrize("handout", sorted((ROOT / "notebooks" / "handouts").glob("*.ipynb")), ids=lambda p: p.name)
def test_handouts_keep_only_the_setup_code(handout):
    """Set-up cells and cells to show, not type, keep their code; solutions are gone (one empty
    "exercise" cell each), except a reveal: a solution cell to show, kept filled in (issue 23);
    tests/test_notebook_format.py checks the rest."""
    full = json.loads((ROOT / "notebooks" / handout.name).read_text())
    cells = json.loads(handout.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    def kept(c):            # typed or shown cells, and the reveals (solution cells to show, filled in)
        tags = set(c["metadata"].get("tags", []))
        return c["cell_type"] == "code" and "setup" not in tags and ("solution" not in tags or "show" in tags)

    typed = [c for c in full["cells"] if kept(c)]
    assert len([c for c in code if kept(c) and "exercise" not in c["metadata"].get("tags", [])]) == len(typed)
    for cell in code:
        tagged = bool({"setup", "show"} & set(cell["metadata"].get("tags", [])))
        assert bool("".join(cell["source"]).strip()) == tagged
        assert not cell["outputs"]


@pytest.mark.parametrize("episode", PAGES, ids=_page_id)
def test_code_fences_are_plain_one_word_fences(episode):
    """Pandoc (the Workbench) reads a backtick fence's info string as one word, or not as code at all."""
    for number, line in enumerate(episode.read_text().splitlines(), 1):
        if line.startswith("```"):
            assert re.fullmatch(r"```[\w-]*", line.rstrip()), f"line {number}: {line!r} is not a one-word fence"


# --- self-study pages ---------------------------------------------------------------------------

def test_there_are_self_study_pages_and_config_lists_them_after_setup_and_reference():
    """Issue 23: what the cut took out of the schedule lives on in learners/ pages, each listed
    under ``learners:`` in config.yaml (after setup.md and reference.md) and made into a notebook."""
    assert set(LESSONS[len(EPISODES):]) <= set(SELF_STUDY)
    config = (ROOT / "config.yaml").read_text()
    section = config.split("\nlearners:\n", 1)[1].split("\n\n", 1)[0]
    listed = re.findall(r"^- ([\w-]+\.md)$", section, flags=re.M)
    assert listed[:2] == ["setup.md", "reference.md"]
    assert {p.name for p in SELF_STUDY} <= set(listed[2:]), "list each self-study page under learners:"
    for page in SELF_STUDY:
        assert (ROOT / "notebooks" / "self-study" / f"{page.stem}.ipynb").is_file(), page.name


#: Self-study pages that the episodes link to and that other branches of issue 23 are writing.
PENDING = {"auditing-a-dataset.md", "beyond-one-class.md"}


def test_the_episodes_links_to_self_study_pages_resolve():
    """The episodes point learners at the self-study pages as ../learners/NAME.md: each is one."""
    for episode in EPISODES:
        for target in re.findall(r"\]\(\.\./learners/([\w-]+\.md)\)", episode.read_text()):
            page = ROOT / "learners" / target
            if target in {"reference.md", "setup.md"} or (target in PENDING and not page.exists()):
                continue
            assert page in SELF_STUDY, f"{episode.name} links to learners/{target}, which is not a self-study page"


@pytest.mark.parametrize("episode", LESSONS, ids=_page_id)
def test_no_code_line_is_longer_than_79_characters(episode):
    """Learners read code in narrow notebook columns and on the site: no line scrolls."""
    for block in re.findall(r"```python\n(.*?)```", episode.read_text(), flags=re.S):
        for line in block.splitlines():
            assert len(line) <= 79, f"{len(line)} characters: {line}"


def test_the_self_study_questions_diagnose_as_the_episodes_do():
    """The episodes' rules for multiple-choice questions (tests/test_schedule.py), for the self-study
    lessons: the right answer is not the longest, carries no hedging word of its own, every wrong
    option's discussion names its misconception, and the right letter is not always the same."""
    from test_schedule import hedges_only_in_the_right_answer, questions, shown_length, verdicts

    rights = []
    for page in LESSONS[len(EPISODES):]:
        found = [(options, solution) for _, options, solution in questions(page.read_text()) if options]
        assert found, f"{page.name} has no multiple-choice question"
        for options, solution in found:
            verdict = verdicts(options, solution)
            right = [x for x in options if verdict.get(x) == "Right"]
            rights += right
            assert max(shown_length(options[x]) for x in right) < \
                max(shown_length(options[x]) for x in options if verdict.get(x) == "Wrong"), \
                f"{page.name}: the right answer is the longest option"
            assert not hedges_only_in_the_right_answer(options, verdict), page.name
            for letter in (x for x in options if verdict.get(x) == "Wrong"):
                reason = re.search(rf"\*\*{letter}\.\*\*\s*Wrong\b[:,.]?(.*?)(?=\n\s*(?:- )?\*\*[A-D]\.\*\*|\Z)",
                                   solution, flags=re.S).group(1)
                assert len(reason.split()) >= 8, f"{page.name}, option {letter}: name its misconception"
    assert len(set(rights)) > 1, f"the right answer is always {rights[0]}"
