"""A lesson an instructor can teach as scheduled (issue 16): honest minutes for what learners type and
the challenges they do, two paths that add up, handouts that match the instructor notes, and
multiple-choice questions whose answer the option lengths do not give away.

The lines typed and the challenges are counted here from the committed notebooks and the episodes,
with parsers of this test's own, and compared with what tools/schedule.py wrote.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import schedule as schedule_tool  # noqa: E402

EPISODES = sorted((ROOT / "episodes").glob("[0-9]*.md"))
NOTES = (ROOT / "instructors" / "instructor-notes.md").read_text(encoding="utf-8")
FOLDED = {"solution", "hint", "spoiler"}
DIV = re.compile(r"^:{3,}\s*\{?\.?([\w-]+)\}?\s*$")
END = re.compile(r"^:{3,}\s*$")
OPTION = re.compile(r"^- \*\*([A-D])\.\*\* (.*)")


def _cells(path: Path) -> list:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _tags(cell: dict) -> set:
    return set(cell["metadata"].get("tags", []))


def lines_typed(episode: Path) -> int:
    """Non-blank code lines of the full notebook's cells a learner types (magic lines left out)."""
    typed = [c for c in _cells(ROOT / "notebooks" / f"{episode.stem}.ipynb")
             if c["cell_type"] == "code" and not ({"setup", "show"} | FOLDED) & _tags(c)]
    return sum(1 for c in typed for line in "".join(c["source"]).splitlines()
               if line.strip() and not line.startswith("%%"))


def notes_row(episode: Path) -> list:
    """The cells of the instructor notes' load table row for an episode."""
    row = re.search(rf"^\| {int(episode.name[:2])}\. [^\n]*\|$", NOTES, flags=re.M)
    assert row, f"{episode.name} has no row in the instructor notes' load table (python tools/schedule.py)"
    return [cell.strip() for cell in row.group(0).strip("|").split("|")]


def front(episode: Path) -> dict:
    head = episode.read_text(encoding="utf-8").split("\n---", 1)[0]
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in head.splitlines() if ":" in line)}


def questions(text: str) -> list:
    """Each challenge: (its prose outside the solution, {letter: option text}, its solution's text)."""
    found, stack = [], []
    current = None
    for line in text.splitlines():
        if END.match(line):
            kind = stack.pop()
            if kind == "challenge":
                found.append(current)
            continue
        opened = DIV.match(line)
        if opened:
            stack.append(opened.group(1))
            if stack[-1] == "challenge":
                current = {"prose": [], "options": {}, "solution": [], "last": None}
            continue
        if not stack or current is None:
            continue
        if "solution" in stack:
            current["solution"].append(line)
        elif (option := OPTION.match(line)):
            current["last"] = option.group(1)
            current["options"][option.group(1)] = option.group(2)
        elif current["last"] and line.startswith("  ") and line.strip():
            current["options"][current["last"]] += " " + line.strip()
        else:
            current["last"] = None
            current["prose"].append(line)
    return [(" ".join(q["prose"]), q["options"], "\n".join(q["solution"])) for q in found]


def verdicts(options: dict, solution: str) -> dict:
    """{letter: "Right" or "Wrong"}, as the solution starts its discussion of each option."""
    return {letter: m.group(1) for letter in options
            if (m := re.search(rf"\*\*{letter}\.\*\*\s*(Right|Wrong)\b", solution))}


def shown_length(option: str) -> int:
    """How long an option looks on screen: Markdown marks left out, spaces collapsed."""
    return len(" ".join(re.sub(r"[*`$]", "", option).split()))


# --- the tool and the pages ---------------------------------------------------------------------

def test_the_schedules_and_tables_are_up_to_date_and_within_the_limits():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "schedule.py"), "--check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("episode", EPISODES, ids=lambda p: p.stem)
def test_typing_and_challenges_fit_the_minutes(episode):
    fields, row = front(episode), notes_row(episode)
    teaching, exercises = int(fields["teaching"]), int(fields["exercises"])
    typed = lines_typed(episode)
    kinds = [bool(options) for _, options, _ in questions(episode.read_text(encoding="utf-8"))]
    assert row[1:4] == [str(teaching), str(exercises), str(typed)], "the notes' table disagrees: run tools/schedule.py"
    assert row[5] == f"{len(kinds)} ({sum(kinds)})"
    assert typed <= 1.5 * teaching, f"{typed} lines to type in {teaching} teaching minutes"
    assert exercises >= 5 * kinds.count(False) + 3 * kinds.count(True), \
        f"{kinds.count(False)} challenges and {kinds.count(True)} multiple-choice questions in {exercises} minutes"


def test_the_limits_catch_an_episode_that_asks_too_much():
    crowded = schedule_tool.Load("03", "03-x", "X", teaching=10, exercises=12, lines_typed=16, challenges=3, mcqs=1,
                                 shown=())
    problems = crowded.problems()
    assert len(problems) == 2
    assert "16 lines to type need at least 11 teaching minutes" in problems[0]
    assert "need at least 13 exercise minutes, not 12" in problems[1]
    assert schedule_tool.Load("03", "03-x", "X", 11, 13, 16, 3, 1, ()).problems() == []


def _tables(index: str) -> dict:
    """{path heading: [(start minutes, label, total minutes)]} from index.md's schedules."""
    found = {}
    for block in index.split("\n### ")[1:]:
        heading = block.split("\n", 1)[0]
        found[heading] = [(int(h) * 60 + int(m), label.strip(), int(total or 0)) for h, m, label, total in
                          re.findall(r"^\| (\d+):(\d\d) \| (.*?) \|.*?\| (?:(\d+) min )?\|$", block, flags=re.M)]
    return found


def test_two_paths_a_half_day_core_ending_with_the_explorer_and_the_full_day():
    tables = _tables((ROOT / "index.md").read_text(encoding="utf-8"))
    assert len(tables) == 2, list(tables)
    (core_name, core), (day_name, day) = tables.items()
    assert core_name.startswith("Half-day core") and day_name.startswith("Full day")
    core_episodes = [label for _, label, _ in core if label.startswith("[")]
    last = re.search(r"\(episodes/([\w-]+)\.md\)", core_episodes[-1]).group(1)
    assert "explore(" in (ROOT / "episodes" / f"{last}.md").read_text(), "the core ends with the explorer"
    finish = core[-1]
    assert finish[1] == "Finish" and 195 <= finish[0] <= 225, f"the core takes {finish[0]} min, not about 3 h 30"
    assert any(label.startswith("*") for _, label, _ in core), "the core has a break"
    listed = {m for _, label, _ in day for m in re.findall(r"\(episodes/([\w-]+\.md)\)", label)}
    assert listed == {p.name for p in EPISODES}, "the full day lists every episode"
    for rows in (core, day):
        for (start, label, total), following in zip(rows, rows[1:]):
            assert following[0] == start + total, f"{following[1]} starts at {following[0]}, not {start + total}"


# --- handouts follow the notes ------------------------------------------------------------------

@pytest.mark.parametrize("episode", EPISODES, ids=lambda p: p.stem)
def test_what_the_notes_say_to_show_is_filled_in_in_the_handout(episode):
    """Every cell the notes list under "show, do not type" is a filled-in cell of the handout, and
    every filled-in cell of the handout that is not set-up is listed: one marker decides both."""
    listed = [] if notes_row(episode)[-1] == "—" else notes_row(episode)[-1].split("; ")
    handout = [c for c in _cells(ROOT / "notebooks" / "handouts" / f"{episode.stem}.ipynb") if c["cell_type"] == "code"]
    filled = ["".join(c["source"]) for c in handout if "".join(c["source"]).strip() and "setup" not in _tags(c)]
    labels = [re.search(r"^# Show, do not type: (.*?)\.?$", source, flags=re.M) for source in filled]
    assert all(labels), "a filled-in handout cell without a 'Show, do not type' marker"
    assert [label.group(1) for label in labels] == listed


def test_the_reveals_are_filled_in_in_the_handouts():
    """Issue 23 found the reveal cells empty in the handouts: the cell that picks episode 4's cat
    class and the one that reveals it, episode 7's blind line-up and its reveal are filled in."""
    expected = {"04": ["the cat class the model believes in most", "the reveal"],
                "07": ["the blind line-up", "the reveal of the line-up"]}
    for number, labels in expected.items():
        episode = next(p for p in EPISODES if p.name.startswith(number))
        assert set(labels) <= set(notes_row(episode)[-1].split("; ")), episode.name
        handout = "\n".join("".join(c["source"]) for c in _cells(ROOT / "notebooks" / "handouts" / f"{episode.stem}.ipynb"))
        for label in labels:
            assert f"# Show, do not type: {label}" in handout, f"{episode.name}: {label} is empty in the handout"


def test_no_handout_sentence_sends_learners_to_a_solution_it_does_not_have():
    for handout in sorted((ROOT / "notebooks" / "handouts").glob("*.ipynb")):
        prose = " ".join("".join(c["source"]) for c in _cells(handout) if c["cell_type"] == "markdown")
        assert not re.search(r"\bsolution\b", prose, flags=re.I), f"{handout.name} mentions a solution it lacks"


# --- the load of a lesson timed by its pilot workshops (issue 23) ------------------------------

SHARED_TOOLS = ROOT.parent / "shared" / "tools"


def _loads():
    return {path.name[:2]: schedule_tool.load(path) for path in schedule_tool.episodes()}


def test_the_load_is_that_of_a_piloted_lesson():
    loads = _loads()
    names = schedule_tool.scheduled_names(loads)
    assert schedule_tool.load_problems(loads, names) == []
    core = schedule_tool.load_rates([loads[n] for n in schedule_tool.core_numbers(loads)])
    whole = schedule_tool.load_rates(list(loads.values()))
    for rates in (core, whole):
        assert rates["code per teaching minute"] <= 1.0
        assert rates["exercise minutes per challenge"] >= 9
        assert rates["solution lines per exercise minute"] <= 0.6
    assert core["minutes"] <= 185
    assert len(names["core"]) <= 10 and len(names["whole schedule"]) <= 20


@pytest.mark.skipif(not (SHARED_TOOLS / "density.py").is_file(), reason="../shared/tools is not beside this checkout")
def test_the_load_is_counted_as_the_shared_density_tool_counts_it():
    """tools/schedule.py counts as ../shared/tools/density.py and helper_names.py do, episode by episode."""
    result = subprocess.run([sys.executable, str(SHARED_TOOLS / "density.py"), str(ROOT)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    shared = {m.group(1): (int(m.group(2)), int(m.group(3)), int(m.group(4)))
              for m in re.finditer(r"^(\d\d)-\S+\s.*?code\s+(\d+) .*?challenges (\d+) .*?solutions (\d+) ",
                                   result.stdout, flags=re.M)}
    ours = {number: (item.code, item.challenges, item.solution) for number, item in _loads().items()}
    assert shared == ours
    names = subprocess.run([sys.executable, str(SHARED_TOOLS / "helper_names.py"), str(ROOT)], capture_output=True,
                           text=True, timeout=60).stdout.split()
    assert names[1:] == schedule_tool.scheduled_names(_loads())["whole schedule"]
    assert int(names[0]) <= 20


def test_the_load_check_catches_a_dense_core_and_too_many_names():
    dense = schedule_tool.Load("01", "01-x", "X", teaching=10, exercises=20, lines_typed=5, challenges=3, mcqs=1,
                               shown=(), code=15, solution=13)
    loads = {"01": dense}
    names = {"core": [f"n{i}" for i in range(11)], "whole schedule": [f"n{i}" for i in range(11)]}
    problems = schedule_tool.load_problems(loads, names)
    assert any("1.50 code per teaching minute" in p for p in problems)
    assert any("6.67 exercise minutes per challenge" in p for p in problems)
    assert any("0.65 solution lines per exercise minute" in p for p in problems)
    assert any("11 names from helpers, more than 10" in p for p in problems)
    easy = schedule_tool.Load("01", "01-x", "X", 10, 20, 5, 2, 1, (), code=10, solution=12)
    assert schedule_tool.load_problems({"01": easy}, {"core": ["a"], "whole schedule": ["a"]}) == []


def test_the_density_count_follows_the_rules():
    text = ("---\ntitle: x\n---\n```python\nimport torch\n# a comment\n\nx = 1\n```\n```output\nprinted\n```\n"
            "::: challenge\n```python\nnot counted\n```\n::: solution\n```python\na\nb\n```\n:::\n:::\n")
    assert schedule_tool.density(text) == schedule_tool.Density(code=2, solution=2, challenges=1)


def test_an_output_block_closes_and_the_prose_after_it_is_not_code(tmp_path):
    """An ```output fence's closing line must not open a code fence: the prose after it is not code."""
    page = tmp_path / "01-x.md"
    page.write_text("```python\nfrom helpers import gradcam\n```\n```output\nprinted\n```\n\n"
                    "See [setup](../learners/setup.md) or helpers.md.\n\n```python\nhelpers.overlay\n```\n",
                    encoding="utf-8")
    assert schedule_tool.helper_names([page]) == ["gradcam", "overlay"]


# --- multiple-choice questions that diagnose ----------------------------------------------------

def _multiple_choice():
    return [(episode.name, prose, options, solution) for episode in EPISODES
            for prose, options, solution in questions(episode.read_text(encoding="utf-8")) if options]


def test_the_right_answer_is_the_longest_option_in_at_most_half_of_the_questions():
    given_away = []
    found = _multiple_choice()
    for name, _, options, solution in found:
        verdict = verdicts(options, solution)
        right = [shown_length(options[x]) for x in options if verdict.get(x) == "Right"]
        wrong = [shown_length(options[x]) for x in options if verdict.get(x) == "Wrong"]
        if max(right) >= max(wrong):
            given_away.append(name)
    assert len(found) >= len(EPISODES)
    assert len(given_away) <= len(found) / 2, f"the right answer is the longest in {given_away}"


def test_each_option_is_judged_and_several_right_answers_are_announced():
    for name, prose, options, solution in _multiple_choice():
        verdict = verdicts(options, solution)
        assert set(verdict) == set(options), f"{name}: the solution starts each option with Right or Wrong"
        right = [x for x in options if verdict[x] == "Right"]
        assert right, f"{name}: no right answer"
        if len(right) > 1:
            assert "choose all that apply" in prose.lower(), f"{name}: {right} are right: say 'Choose all that apply'"


#: Words that make an option sound careful: a learner who knows nothing picks the careful option.
#: None of them may appear in a right answer unless a wrong answer has it too (issue 23).
HEDGES = ("only", "may", "might", "can", "could", "some", "often", "usually", "likely", "possibly",
          "probably", "relative", "relatively", "partly", "mostly", "tends", "suggests", "in this", "for this",
          "this image", "this map", "this class", "at most", "at least", "nothing more", "as far as")


def hedges_only_in_the_right_answer(options: dict, verdict: dict) -> list:
    """The hedging words that appear in a right option and in no wrong one."""
    def words(text: str) -> set:
        plain = " " + " ".join(re.findall(r"[a-z]+", text.lower())) + " "
        return {hedge for hedge in HEDGES if f" {hedge} " in plain}
    right = set().union(*(words(options[x]) for x in options if verdict.get(x) == "Right"))
    wrong = set().union(*(words(options[x]) for x in options if verdict.get(x) == "Wrong"))
    return sorted(right - wrong)


def test_no_right_answer_is_the_only_hedged_option():
    hedged = {}
    for name, _, options, solution in _multiple_choice():
        found = hedges_only_in_the_right_answer(options, verdicts(options, solution))
        if found:
            hedged[f"{name}: {next(iter(options.values()))[:30]}..."] = found
    assert not hedged, f"hedging words only in the right answer: {hedged}"


def test_every_wrong_option_names_its_misconception():
    """The solution says why each wrong option is wrong, in more than a word: the misconception."""
    for name, _, options, solution in _multiple_choice():
        for letter, verdict in verdicts(options, solution).items():
            if verdict != "Wrong":
                continue
            reason = re.search(rf"\*\*{letter}\.\*\*\s*Wrong\b[:,.]?(.*?)(?=\n\s*(?:- )?\*\*[A-D]\.\*\*|\Z)",
                               solution, flags=re.S).group(1)
            assert len(reason.split()) >= 8, f"{name}, option {letter}: say which misconception it holds"


def test_the_hedge_check_catches_a_careful_right_answer():
    options = {"A": "The model sees dogs.", "B": "In this map, the evidence may be on the dog."}
    assert hedges_only_in_the_right_answer(options, {"A": "Wrong", "B": "Right"}) == ["in this", "may", "this map"]
    assert hedges_only_in_the_right_answer({"A": "It may be so.", "B": "It may not."},
                                           {"A": "Wrong", "B": "Right"}) == []


def test_the_question_checks_catch_a_giveaway_and_an_unannounced_second_answer():
    text = ("::: challenge\nWhich?\n\n- **A.** short\n- **B.** the right one, and much longer\n  than the rest\n"
            "- **C.** also right\n\n::: solution\n**A.** Wrong: x.\n**B.** Right.\n**C.** Right.\n:::\n:::\n")
    (prose, options, solution), = questions(text)
    assert options["B"] == "the right one, and much longer than the rest"
    assert verdicts(options, solution) == {"A": "Wrong", "B": "Right", "C": "Right"}
    assert "choose all that apply" not in prose.lower()
    assert shown_length("**B.** `x`  y") == len("B. x y")


# --- known stumbles -----------------------------------------------------------------------------

def test_episode_3s_gradient_cell_can_run_again():
    """Learners re-run the cell after fixing a typo: it keeps the graph (retain_graph=True), so the
    second run works; without that, the same cell fails the second time."""
    from IPython.testing.globalipapp import get_ipython

    shell = get_ipython()
    code = [c for c in _cells(ROOT / "notebooks" / "03-gradcam-by-hand.ipynb")
            if c["cell_type"] == "code" and not FOLDED & _tags(c)]
    source = ["".join(c["source"]) for c in code]
    setup = next(s for s, c in zip(source, code) if "setup" in _tags(c))
    hook = next(s for s in source if "register_forward_hook(keep_output)" in s)
    gradient = next(s for s in source if "torch.autograd.grad(score, activations" in s)
    for cell in (setup, hook, gradient, gradient):
        result = shell.run_cell(cell)
        assert result.success, result.error_in_exec
    without = gradient.replace(", retain_graph=True", "")
    assert without != gradient
    assert shell.run_cell(hook).success and shell.run_cell(without).success
    again = shell.run_cell(without)
    assert not again.success and "a second time" in str(again.error_in_exec)
