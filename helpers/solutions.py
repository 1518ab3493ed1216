"""``%%solution``: run a notebook cell and keep what it shows folded away until clicked.

The learners' notebooks start each solution's code cell with ``%%solution``. JupyterLab keeps
that code collapsed, but it opens a cell's output again whenever the cell runs (Run All
included); this cell magic puts the output in a closed box instead, so that a solution stays
hidden, answer and all, until the learner opens it.

    %load_ext helpers.solutions        # once, in the set-up cell

    %%solution
    print(6 * 7)                       # 42, in a box that opens on a click

An error in the cell is shown in the box and raised again, so that the cell fails (and nbval
sees it) as it would without the magic.
"""

from __future__ import annotations

import sys

TITLE = "Output of the solution (click to open)"


def solution(line: str, cell: str) -> None:
    """Run ``cell`` in the notebook's namespace, its output in a closed accordion.

    Without a notebook there is nothing to fold the output into: in a terminal IPython the
    cell runs as any cell, and in plain Python (no IPython at all) in ``__main__``'s namespace.
    """
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        namespace = vars(sys.modules["__main__"])
        exec(compile(cell, "<%%solution cell>", "exec"), namespace)     # noqa: S102 - the learner's own cell
        return
    if getattr(shell, "kernel", None) is None:
        shell.run_cell(cell).raise_error()
        return
    import ipywidgets as widgets
    from IPython.display import display

    output = widgets.Output()
    box = widgets.Accordion(children=[output], selected_index=None, titles=(TITLE,))
    display(box)
    with output:
        result = shell.run_cell(cell)
    result.raise_error()


def load_ipython_extension(shell) -> None:
    """``%load_ext helpers.solutions``"""
    shell.register_magic_function(solution, magic_kind="cell")
