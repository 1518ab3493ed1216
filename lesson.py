#!/usr/bin/env python3
"""The lesson's front door. Each Makefile target calls one of these; Windows learners without
make can run them directly:

    python lesson.py lab      # set up (.venv, packages, data), then start JupyterLab on notebooks/
    python lesson.py test     # set up for developers, then pytest and nbval over every notebook
    python lesson.py check    # set up, then say line by line whether this computer is ready
    python lesson.py site     # set up, then build the executed lesson as HTML in _site/
    python lesson.py mirror [FOLDER]   # write the lesson's files to FOLDER (default lesson-mirror/)
    python lesson.py setup    # only the set-up
    python lesson.py notebooks [--check]   # regenerate notebooks/ from episodes/ (or check they agree)

Only the standard library is used here: it runs before the virtual environment exists.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
LEARNER_REQUIREMENTS = ROOT / "requirements.txt"
DEVELOPER_REQUIREMENTS = ROOT / "requirements-dev.txt"


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def run(*command: object, env: dict | None = None, must_succeed: bool = True) -> int:
    print("+", " ".join(str(part) for part in command), flush=True)
    result = subprocess.run([str(part) for part in command], cwd=ROOT, env=env)
    if result.returncode != 0 and must_succeed:
        sys.exit(result.returncode)
    return result.returncode


def ensure_venv(developer: bool) -> Path:
    """Create .venv when missing and install what the lesson (and, for developers, the tests) need."""
    python = venv_python()
    if not python.exists():
        print(f"Creating the virtual environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    requirements = DEVELOPER_REQUIREMENTS if developer else LEARNER_REQUIREMENTS
    inputs = [LEARNER_REQUIREMENTS, requirements, ROOT / "pyproject.toml"]
    stamp_text = hashlib.sha256(b"".join(path.read_bytes() for path in inputs)).hexdigest()
    stamp = VENV / f".installed-{'dev' if developer else 'learner'}"
    if not stamp.exists() or stamp.read_text() != stamp_text:
        run(python, "-m", "pip", "install", "--quiet", "-r", requirements, "-e", ROOT)
        stamp.write_text(stamp_text)
    quiet_jupyterlab()
    return python


def quiet_jupyterlab() -> None:
    """No news pop-up and no update check when JupyterLab starts (settings in .venv only)."""
    settings = VENV / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"@jupyterlab/apputils-extension:notification":
                                    {"fetchNews": "false", "checkForUpdates": False}}, indent=2))


def setup(developer: bool = False) -> Path:
    """The packages must install; missing data only warns (the checker then says what to do)."""
    python = ensure_venv(developer)
    if run(python, "-m", "helpers.setup", must_succeed=False):
        print("WARNING: some lesson data is missing (see above); the lesson needs it.", flush=True)
    return python



def test_environment() -> dict:
    """Tests run offline, with the stand-in model and a non-interactive matplotlib."""
    env = dict(os.environ)
    env.setdefault("LESSON_OFFLINE", "1")
    env.setdefault("LESSON_MODEL", "efficientnet_lite0")
    env["MPLBACKEND"] = "Agg"
    return env


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "help"
    if command == "setup":
        python = ensure_venv(developer="--dev" in argv)
        run(python, "-m", "helpers.setup")
    elif command == "lab":
        python = setup()
        as_root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []   # containers
        run(python, "-m", "jupyter", "lab", "--notebook-dir", ROOT / "notebooks", *as_root, *argv[1:],
            "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate")
    elif command == "test":
        python = ensure_venv(developer=True)
        run(python, "-m", "helpers.setup", env=test_environment())
        run(python, "-m", "pytest", "tests", "notebooks", "--nbval-lax", "--nbval-current-env",
            "--ignore=notebooks/handouts", *argv[1:], env=test_environment())
    elif command == "check":
        python = setup()
        run(python, "-m", "helpers.check")
    elif command == "site":
        python = setup(developer=True)
        run(python, ROOT / "tools" / "site.py", *argv[1:])
    elif command == "mirror":
        python = ensure_venv(developer=False)
        folder = Path(argv[1]) if len(argv) > 1 else ROOT / "lesson-mirror"
        run(python, "-m", "helpers.setup", "--mirror-out", folder.resolve())
    elif command == "notebooks":
        python = ensure_venv(developer=True)
        run(python, ROOT / "tools" / "notebooks.py", *argv[1:])
    else:
        print(__doc__)
        return 0 if command in {"help", "-h", "--help"} else 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
