"""The notebooks' cell magic ``%%expect_error``: a cell that is *meant* to fail.

It shows the error's traceback, as IPython would, but does not raise it, so that "Run All" goes
on to the cells below; and it raises an error of its own if the cell runs *without* failing, or
fails with another type of error than the one named.

    %%expect_error ZeroDivisionError
    1 / 0                              # the traceback is shown; the next cell still runs

Importing ``helpers`` in IPython registers it (JupyterLab, nbval, Colab, Binder: the set-up
cell's ``from helpers import ...`` does it); ``%load_ext helpers.solutions`` does the same by
hand. In plain Python (no IPython at all) ``expect_error`` runs the cell in ``__main__``'s
namespace. Importing this module needs no IPython.

(Solutions need no magic: the notebooks fold each one under a collapsed "Solution" heading,
tools/notebooks.py.)
"""

from __future__ import annotations

import warnings

import builtins
import sys
import traceback
from typing import Optional, Tuple, Type

EXPECTED_NOTE = "(This error was expected: the cells below still run.)"


class ErrorNotRaised(AssertionError):
    """A cell marked ``%%expect_error`` ran without the error it was meant to raise."""


def expected_types(line: str, namespace: Optional[dict] = None) -> Tuple[Type[BaseException], ...]:
    """The exception types named on a ``%%expect_error`` line (empty: any error).

    Names are looked up in ``namespace`` (the notebook's variables), then among the built-ins;
    a dotted name such as ``torch.OutOfMemoryError`` is followed attribute by attribute.

    >>> expected_types("TypeError, ValueError")
    (<class 'TypeError'>, <class 'ValueError'>)
    """
    found = []
    namespace = namespace or {}
    for name in line.replace(",", " ").split():
        if name.startswith("#"):                       # a comment after the names
            break
        head, *rest = name.split(".")
        if head in namespace:
            value = namespace[head]
        elif hasattr(builtins, head):
            value = getattr(builtins, head)
        else:
            raise NameError(f"%%expect_error {line.strip()}: no exception called {head!r}; "
                            "name a built-in one (TypeError) or import it first")
        for attribute in rest:
            value = getattr(value, attribute)
        if not (isinstance(value, type) and issubclass(value, BaseException)):
            raise TypeError(f"%%expect_error {line.strip()}: {name} is not an exception type")
        found.append(value)
    return tuple(found)


def expect_error(line: str, cell: str) -> None:
    """Run ``cell``, which is meant to fail: show its traceback, do not raise it.

    Raises ``ErrorNotRaised`` if the cell runs without an error; re-raises the cell's own error
    (with a note) if it is not of a type named on ``line``.
    """
    from IPython import get_ipython

    shell = get_ipython()
    namespace = shell.user_ns if shell is not None else vars(sys.modules["__main__"])
    expected = expected_types(line, namespace)
    if shell is None:
        code = compile("\n" + cell, "<%%expect_error cell>", "exec")      # "\n": the magic's line
        scope = namespace
    else:
        source = "\n" + shell.transform_cell(cell)     # magics and ! lines work; "\n": the magic's line
        code = shell.compile(source, shell.compile.cache(source, shell.execution_count), "exec")
        scope = shell.user_global_ns                   # the cache lets the traceback show the cell's lines
    try:
        exec(code, scope, namespace)                   # noqa: S102 - the learner's own cell
    except Exception as error:
        if expected and not isinstance(error, expected):
            note = f"%%expect_error: this cell was meant to fail with {_names(expected)}, not {type(error).__name__}."
            if hasattr(error, "add_note"):
                error.add_note(note)
            else:                                      # Python before 3.11 has no notes
                print(note, file=sys.stderr)
            raise
        print(_traceback(shell, error), file=sys.stderr)
        print(EXPECTED_NOTE, file=sys.stderr)
        return
    raise ErrorNotRaised(f"this cell was meant to fail{' with ' + _names(expected) if expected else ''}, "
                         "but it ran without an error: check what changed above it")


def _traceback(shell, error: Exception) -> str:
    """The error's traceback as IPython shows it (plain Python's without IPython), from the
    cell's own code down, without this module's frames."""
    cell_frames = error.__traceback__.tb_next
    if shell is None:
        return "".join(traceback.format_exception(type(error), error, cell_frames)).rstrip()
    return shell.InteractiveTB.stb2text(shell.InteractiveTB.structured_traceback(type(error), error, cell_frames))


def _names(types: Tuple[Type[BaseException], ...]) -> str:
    return " or ".join(t.__name__ for t in types)


#: Warnings a learner's notebook need not show: Captum says, on every call, that it made the input
#: require gradients (what it is meant to do; the lesson's tensors do not require them).
QUIET_WARNINGS = (r"Input Tensor \d+ did not already require gradients",)


def load_ipython_extension(shell) -> None:
    """``%load_ext helpers.solutions`` (``import helpers`` in IPython does it too): the cell magic
    ``%%expect_error``, and no warnings of ``QUIET_WARNINGS`` in the notebook."""
    shell.register_magic_function(expect_error, magic_kind="cell")
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=UserWarning)
