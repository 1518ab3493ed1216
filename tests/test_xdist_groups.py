"""`make test`'s `pytest -n auto --dist loadgroup` keeps each group on one worker (tests/conftest.py).

pytest-xdist 3.8 marks a test's group by writing ``item._nodeid``, which pytest 9 no longer reads:
every group was quietly ignored, and nbval's cells of one notebook (one kernel) went to
different workers. The conftest puts the group in the node id itself; this runs a small test
file under xdist, with this folder's conftest hook, and checks where each test ran.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

TESTS = '''
import os
import pytest

def record(name):
    with open(os.environ["WHERE"], "a") as file:
        file.write(f"{name} {os.environ.get('PYTEST_XDIST_WORKER', '-')}\\n")

@pytest.mark.xdist_group("first")
@pytest.mark.parametrize("n", range(6))
def test_a(n):
    record(f"a{n}")

@pytest.mark.xdist_group("second")
@pytest.mark.parametrize("n", range(6))
def test_b(n):
    record(f"b{n}")
'''

CONFTEST = f'''
import importlib.util
spec = importlib.util.spec_from_file_location("lesson_conftest", {str(HERE / "conftest.py")!r})
lesson_conftest = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lesson_conftest)
pytest_collection_modifyitems = lesson_conftest.pytest_collection_modifyitems
'''


def test_each_group_runs_on_one_worker(tmp_path):
    (tmp_path / "test_grouped.py").write_text(TESTS)
    (tmp_path / "conftest.py").write_text(CONFTEST)
    where = tmp_path / "where.txt"
    result = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p",
                             "no:cacheprovider", str(tmp_path / "test_grouped.py")], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, env={**os.environ, "WHERE": str(where)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "test_a[0]@first" in result.stdout and "test_b[5]@second" in result.stdout
    ran = dict(line.split() for line in where.read_text().splitlines())
    assert len(ran) == 12
    assert len({ran[f"a{n}"] for n in range(6)}) == 1 and len({ran[f"b{n}"] for n in range(6)}) == 1
