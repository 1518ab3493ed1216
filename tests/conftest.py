"""Shared fixtures. Tests never reach the network: LESSON_OFFLINE is set, files come from the
mirror (LESSON_DATA_MIRROR, or ../shared/lesson-data beside a checkout), and the only server
any test talks to runs on 127.0.0.1."""

from __future__ import annotations

import atexit
import contextlib
import functools
import http.server
import os
import shutil
import socket
import sys
import tempfile
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))          # the tests use tools/runall.py (and read the other tools)
os.environ.setdefault("LESSON_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# nbval's kernels (`make test` runs the notebooks with nbval too) get no fixtures: a cache of their
# own, so that the user's cache is never touched
if "LESSON_CACHE" not in os.environ:
    os.environ["LESSON_CACHE"] = tempfile.mkdtemp(prefix="lesson-cache-nbval-")
    atexit.register(shutil.rmtree, os.environ["LESSON_CACHE"], True)
if not os.environ.get("LESSON_DATA_MIRROR") and (ROOT.parent / "shared" / "lesson-data").is_dir():
    os.environ["LESSON_DATA_MIRROR"] = str((ROOT.parent / "shared" / "lesson-data").resolve())
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    # pytest-xdist: share the cores among the workers, so that torch in a worker, its kernels and
    # its subprocesses do not each start a thread per core (set before anything imports torch)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1)
                                                     // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

#: Fixtures whose tests take minutes (they execute notebooks, start JupyterLab or a browser, build a
#: wheel): with pytest-xdist these start first, and the many short tests fill the gaps at the end.
SLOW_FIXTURES = {"notebook_run", "browser", "jupyterlab_server", "installed", "workbench_site"}


#: The model of nbval's kernels. `make test` runs every notebook with nbval too (`--nbval-lax`: each
#: cell must run without an error), with ResNet-50's architecture and random weights, the model
#: participants use (its speed and layer names, no download): that pass is the check that every
#: notebook runs with it, while the Run All harness (tests/test_notebooks.py) runs them with the
#: stand-in. LESSON_NBVAL_MODEL picks another.
NBVAL_MODEL = os.environ.get("LESSON_NBVAL_MODEL", "resnet50_untrained")


def is_nbval(item) -> bool:
    """A cell that nbval runs (``notebooks/NAME.ipynb::Cell 3``)."""
    return str(getattr(item, "path", "")).endswith(".ipynb")


def _kernel_with_nbval_model(setup):
    """A notebook collector's ``setup`` (where nbval starts its kernel), with LESSON_MODEL=NBVAL_MODEL
    while the kernel starts: a kernel takes its environment from this process."""
    @functools.wraps(setup)
    def start():
        saved = os.environ.get("LESSON_MODEL")
        os.environ["LESSON_MODEL"] = NBVAL_MODEL
        try:
            return setup()
        finally:
            if saved is None:
                os.environ.pop("LESSON_MODEL", None)
            else:
                os.environ["LESSON_MODEL"] = saved
    return start


def _group_in_node_id(item) -> None:
    """What pytest-xdist does for ``--dist loadgroup``, where it cannot: it puts a test's group at the
    end of its node id (``...::test_x@GROUP``) by writing ``item._nodeid``, which pytest 9 no longer
    reads (its node ids live in ``item._id``), so every group was quietly ignored and nbval's cells
    of one notebook, sharing one kernel, were sent to different workers."""
    from _pytest.nodeid import NodeId

    if not isinstance(getattr(item, "_id", None), NodeId) or "@" in item.nodeid:
        return                                       # pytest 8 and older: xdist's own hook works
    names = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                    for mark in item.iter_markers("xdist_group")})
    item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(names)}")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """For ``pytest -n N --dist loadgroup`` (``make test``): each module's tests run on one worker
    (its module-scoped fixtures are made once) unless marked ``xdist_group`` (tests/notebook_runs.py
    groups a notebook's tests), and modules with slow tests are handed out first."""
    # (a conftest's runtest hooks reach only the tests below its folder: nbval's notebooks are not)
    for notebook in {item.parent for item in items if is_nbval(item)}:
        notebook.setup = _kernel_with_nbval_model(notebook.setup)
    loadgroup = bool(getattr(config.option, "loadgroup", False))
    for item in items:
        if not any(True for _ in item.iter_markers("xdist_group")):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
        if loadgroup:
            _group_in_node_id(item)
    slow_modules = {item.nodeid.split("::")[0] for item in items if SLOW_FIXTURES & set(getattr(item, "fixturenames", ()))
                    or is_nbval(item)}                                         # nbval: a notebook per group
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in slow_modules)       # stable: order kept within


@pytest.fixture(scope="session")
def mirror() -> Path:
    value = os.environ.get("LESSON_DATA_MIRROR")
    assert value and Path(value, "both.png").is_file(), (
        "the tests need the lesson images: set LESSON_DATA_MIRROR to the absolute path of a folder holding them")
    return Path(value)


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory, mirror):
    """Each test session fetches into its own cache, so the user's cache is never touched."""
    os.environ["LESSON_CACHE"] = str(tmp_path_factory.mktemp("lesson-cache"))
    yield


@pytest.fixture(scope="session")
def stand_in():
    from helpers import load_model

    return load_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def random_resnet():
    """ResNet-50 with random (but fixed) weights: same architecture and speed as the real one."""
    import torch
    from torchvision.models import resnet50

    torch.manual_seed(0)
    return resnet50(weights=None).eval()


@pytest.fixture(scope="session")
def both():
    from helpers import fetch, load_image

    return load_image(fetch("both.png"))


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def http_server(tmp_path):
    """Serve a temporary folder on 127.0.0.1; yields (folder, base_url)."""
    folder = tmp_path / "served"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def online(monkeypatch):
    """Allow downloads (only ever from 127.0.0.1 in these tests)."""
    monkeypatch.delenv("LESSON_OFFLINE", raising=False)


@pytest.fixture(scope="session")
def notebook_run(tmp_path_factory):
    """``run = notebook_run(path, model=None)``: the notebook executed as Run All executes it, once per
    model per test run and shared by every test that asks (tests/notebook_runs.py)."""
    from notebook_runs import make_notebook_runs

    return make_notebook_runs(tmp_path_factory)
