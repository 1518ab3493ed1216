"""The notebooks' cell magics (helpers/solutions.py): ``%%expect_error`` shows an intended error and
lets Run All go on, and fails loudly when the error does not come; the generator puts it on the cells
marked "meant to fail"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import notebooks as notebook_tool  # noqa: E402

from helpers.solutions import ErrorNotRaised, expected_types  # noqa: E402


@pytest.fixture(scope="module")
def shell():
    from IPython.testing.globalipapp import get_ipython

    shell = get_ipython()                   # the one test shell, started by whichever test comes first
    assert shell.run_cell("%load_ext helpers.solutions").success
    return shell


def test_an_intended_error_shows_its_traceback_and_the_next_cell_runs(shell, capsys):
    result = shell.run_cell("%%expect_error TypeError\nbefore = 1\n\ndef add(a):\n    return a + 'text'\n\nadd(before)")
    assert result.success and result.error_in_exec is None
    err = capsys.readouterr().err
    assert "TypeError" in err and "unsupported operand type(s) for +: 'int' and 'str'" in err
    assert "return a + 'text'" in err and "add(before)" in err          # the cell's own lines, readable
    assert "line 7" in err                      # numbered as in the cell, the magic's line counted
    assert "expect_error(line, cell)" not in err and "solutions.py" not in err   # not the magic's frames
    assert "expected" in err
    assert shell.user_ns["before"] == 1         # what ran before the error stays done
    assert shell.run_cell("after = before + 1").success and shell.user_ns["after"] == 2


def test_a_cell_that_does_not_fail_fails_loudly(shell):
    result = shell.run_cell("%%expect_error\nquiet = 3")
    assert not result.success and isinstance(result.error_in_exec, ErrorNotRaised)
    assert "ran without an error" in str(result.error_in_exec)
    named = shell.run_cell("%%expect_error KeyError\n{}.get('x')")
    assert isinstance(named.error_in_exec, ErrorNotRaised) and "KeyError" in str(named.error_in_exec)


def test_an_error_of_another_type_is_raised_as_it_is_with_a_note(shell, capsys):
    result = shell.run_cell("%%expect_error ValueError\n1 / 0")
    assert not result.success and isinstance(result.error_in_exec, ZeroDivisionError)
    assert "meant to fail with ValueError, not ZeroDivisionError" in " ".join(result.error_in_exec.__notes__)
    assert shell.run_cell("%%expect_error ValueError, ZeroDivisionError\n1 / 0").success   # either will do
    capsys.readouterr()


def test_before_python_3_11_an_error_of_another_type_is_raised_as_it_is(shell, capsys):
    # Python 3.9 and 3.10 (which the lesson supports) have no add_note: the cell's own error must
    # come out, not an AttributeError raised while handling it.
    assert shell.run_cell("class NoNotes(ZeroDivisionError):\n"
                          "    def __getattribute__(self, name):\n"
                          "        if name == 'add_note':\n"
                          "            raise AttributeError(name)\n"
                          "        return super().__getattribute__(name)").success
    result = shell.run_cell("%%expect_error ValueError\nraise NoNotes('as on Python 3.10')")
    assert type(result.error_in_exec).__name__ == "NoNotes" and result.error_in_exec.__context__ is None
    assert "meant to fail with ValueError, not NoNotes" in capsys.readouterr().err


def test_subclasses_and_dotted_names_count(shell, capsys):
    assert shell.run_cell("%%expect_error LookupError\n[][1]").success               # IndexError is one
    assert shell.run_cell("import json").success
    assert shell.run_cell("%%expect_error json.JSONDecodeError\njson.loads('{')").success
    capsys.readouterr()


def test_a_bad_type_name_says_what_is_wrong():
    with pytest.raises(NameError, match="no exception called 'Nonsense'"):
        expected_types("Nonsense")
    with pytest.raises(TypeError, match="len is not an exception type"):
        expected_types("len")
    assert expected_types("") == () and expected_types("KeyError  # why") == (KeyError,)


def test_importing_helpers_in_ipython_registers_the_magic():
    """No %load_ext line in the notebooks: the set-up cell's `from helpers import ...` registers
    %%expect_error, in a fresh IPython as in JupyterLab's kernel, nbval's and Colab's."""
    code = ("from IPython.testing.globalipapp import start_ipython\n"
            "shell = start_ipython()\n"
            "before = shell.run_cell('%%expect_error ZeroDivisionError\\n1 / 0')\n"
            "print('before:', type(before.error_in_exec).__name__)\n"
            "assert shell.run_cell('from helpers import LABELS').success\n"
            "after = shell.run_cell('%%expect_error ZeroDivisionError\\n1 / 0')\n"
            "print('after:', after.success)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert "before: UsageError" in out.stdout and "after: True" in out.stdout


def test_importing_helpers_outside_ipython_imports_no_ipython():
    out = subprocess.run([sys.executable, "-c", "import sys, helpers; print('IPython' in sys.modules)"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60,
                         env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "False", out.stderr


def test_in_plain_python_the_magic_runs_in_main_and_still_checks():
    """A notebook run as a script (no IPython): the cell runs in __main__, the error is shown, and a
    cell that does not fail still fails loudly."""
    code = ("import helpers.solutions as s\n"
            "s.expect_error('ZeroDivisionError', 'half = 1\\nhalf / 0')\n"
            "print('went on, half =', half)\n"
            "try:\n    s.expect_error('', 'fine = 2')\nexcept s.ErrorNotRaised as e:\n    print('loud:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
                         env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert "went on, half = 1" in out.stdout and "loud: this cell was meant to fail" in out.stdout
    assert "ZeroDivisionError: division by zero" in out.stderr and "half / 0" not in out.stderr.split("Traceback")[0]
    assert "expected" in out.stderr


def test_the_generator_runs_cells_meant_to_fail_under_the_magic(tmp_path):
    episode = tmp_path / "01-x.md"
    episode.write_text("---\ntitle: X\nteaching: 1\nexercises: 1\n---\n\n"
                       "```python\n# Set-up: run this cell.\nimport math\n```\n\n"
                       "```python\n# This cell is meant to fail with a ValueError: see the message.\nmath.sqrt(-1)\n```\n\n"
                       "```python\n# Show, do not type: the other failure.\n"
                       "# This cell is meant to fail too.\nmath.sqrt('a')\n```\n")
    learner = notebook_tool.render(episode, notebook_tool.LEARNER)
    handout = notebook_tool.render(episode, notebook_tool.HANDOUT)
    site = notebook_tool.render(episode, notebook_tool.SITE)
    code = [c for c in learner.cells if c.cell_type == "code"]
    assert code[0].source == notebook_tool.LOAD_MAGICS and "setup" in code[0].metadata["tags"]   # no helpers import
    assert code[1].source == "# Set-up: run this cell.\nimport math"
    assert code[2].source.startswith("%%expect_error ValueError\n# This cell is meant to fail")
    assert "raises-exception" not in code[2].metadata.get("tags", [])
    failing = [c for c in site.cells if c.cell_type == "code"][1]
    assert failing.source.startswith("# This cell") and "raises-exception" in failing.metadata["tags"]
    assert "import helpers" not in "".join(c.source for c in site.cells)
    kept = [c for c in handout.cells if c.cell_type == "code"]
    assert kept[0].source == notebook_tool.LOAD_MAGICS                # the handout's shown failure needs it
    assert kept[2].source == "" and kept[3].source.startswith("%%expect_error\n# Show, do not type")
    with_helpers = tmp_path / "02-y.md"
    with_helpers.write_text(episode.read_text().replace("import math", "import math\nfrom helpers import LABELS"))
    code = [c for c in notebook_tool.render(with_helpers, notebook_tool.LEARNER).cells if c.cell_type == "code"]
    assert len(code) == 3 and "helpers" not in code[0].source.replace("from helpers import LABELS", "")
