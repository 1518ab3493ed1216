#!/usr/bin/env python3
"""The lesson's front door. Each Makefile target calls one of these; Windows learners without
make can run them directly:

    python lesson.py lab      # set up (.venv, packages, data), then start JupyterLab on notebooks/
    python lesson.py test     # set up for developers, then every test (every notebook run as Run All runs it)
    python lesson.py check    # set up, then say line by line whether this computer is ready
    python lesson.py site     # set up, then build the executed lesson as HTML in _site/
    python lesson.py mirror [FOLDER]   # write the lesson's files to FOLDER (default lesson-mirror/)
    python lesson.py setup    # only the set-up
    python lesson.py notebooks [--check]   # regenerate notebooks/ from episodes/ (or check they agree)
    python lesson.py outputs [--check]     # write the marked cells' printouts and figures into the episodes
    python lesson.py links [--check]       # write every link to the lesson's public home (config.yaml's source)
    python lesson.py preflight  # instructors: check the text's claims against LESSON_MODEL (default ResNet-50)
    python lesson.py workbench  # check the lesson with the Carpentries Workbench (R's sandpaper), build site/

Options: --dry-run prints every command it would run and runs none; `lab --anyway` starts
JupyterLab even when the lesson's images are missing.

PyTorch: on Linux without an NVIDIA GPU, torch and torchvision come from PyTorch's CPU-only
wheel index (a few hundred MB instead of several GB of CUDA libraries), installed first so that
nothing else pulls the CUDA build in. macOS and Windows get the default wheels, CPU-only already.
LESSON_TORCH_INDEX=URL picks another index; LESSON_TORCH_INDEX=default the registry's default.

Only the standard library is used here: it runs before the virtual environment exists.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import urllib.error
import urllib.request
import venv
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Tuple

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
LEARNER_REQUIREMENTS = ROOT / "requirements.txt"
DEVELOPER_REQUIREMENTS = ROOT / "requirements-dev.txt"
#: PyTorch's own index of CPU-only wheels (Linux): no CUDA libraries.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
#: How long to wait for that index before falling back to the default one, in seconds.
PROBE_SECONDS = 5.0
#: True while `--dry-run` is given: commands are printed, not run.
DRY_RUN = False


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def shown(command: List[object]) -> str:
    """A command as a learner could type it (parts with spaces or <, > quoted)."""
    return " ".join(f'"{part}"' if re.search(r"[\s<>|]", str(part)) else str(part) for part in command)


def run(*command: object, env: dict | None = None, must_succeed: bool = True) -> int:
    print("+", shown(list(command)), flush=True)
    if DRY_RUN:
        return 0
    result = subprocess.run([str(part) for part in command], cwd=ROOT, env=env)
    if result.returncode != 0 and must_succeed:
        sys.exit(result.returncode)
    return result.returncode


def has_nvidia_gpu(which: Callable[[str], Optional[str]] = shutil.which,
                   exists: Callable[[str], bool] = os.path.exists) -> bool:
    """An NVIDIA driver is installed: `nvidia-smi` is on PATH, or /proc/driver/nvidia exists (Linux)."""
    return which("nvidia-smi") is not None or exists("/proc/driver/nvidia")


def torch_index(platform: str = sys.platform, environ: Optional[Mapping[str, str]] = None,
                gpu: Optional[bool] = None) -> Optional[str]:
    """The index that torch and torchvision come from: a URL, or None for the registry's default.

    >>> torch_index("linux", {}, gpu=False)
    'https://download.pytorch.org/whl/cpu'
    >>> torch_index("darwin", {}, gpu=False) is None          # macOS's default wheels are CPU-only
    True
    """
    environ = os.environ if environ is None else environ
    chosen = environ.get("LESSON_TORCH_INDEX", "").strip()
    if chosen:
        return None if chosen.lower() == "default" else chosen
    if not platform.startswith("linux"):
        return None
    return None if (has_nvidia_gpu() if gpu is None else gpu) else TORCH_CPU_INDEX


def _probe(url: str, timeout: float) -> Optional[str]:
    request = urllib.request.Request(url.rstrip("/") + "/torch/", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError as error:
        return None if error.code == 405 else f"it answered HTTP {error.code}"    # 405: no HEAD, but there
    except urllib.error.URLError as error:
        return str(error.reason)
    except Exception as error:   # noqa: BLE001 - OSError, ValueError, http.client's InvalidURL...: a reason, not a traceback
        return str(error) or type(error).__name__


def _local_index_problem(url: str) -> Optional[str]:
    """Why a local index (a folder, or a file:// URL) cannot be used, or None when the folder is there."""
    folder = Path(urllib.request.url2pathname(url[len("file://"):]) if url.startswith("file://") else url)
    if not folder.expanduser().is_dir():
        return f"it is not an http(s) URL, and there is no folder {folder}"
    return None


def index_problem(url: str, timeout: float = PROBE_SECONDS) -> Optional[str]:
    """None when the package index at ``url`` answers for torch within ``timeout`` s, else why not.

    http(s) indexes are probed; the probe runs in a thread so that a slow name lookup cannot
    hold the set-up up for longer than ``timeout``. Anything else must be a folder that exists.
    """
    if re.search(r"\s", url):
        return "the address contains a space"
    if not url.startswith(("http://", "https://")):
        return _local_index_problem(url)
    answer: List[Optional[str]] = []
    thread = threading.Thread(target=lambda: answer.append(_probe(url, timeout)), daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return answer[0] if answer else f"no answer within {timeout:g} s"


def torch_requirements() -> List[str]:
    """The torch and torchvision lines of requirements.txt (one list of versions for every route)."""
    wanted = []
    for line in LEARNER_REQUIREMENTS.read_text().splitlines():
        name = re.split(r"[<>=!~;\s\[]", line.strip(), maxsplit=1)[0].lower()
        if name in {"torch", "torchvision"}:
            wanted.append(line.split("#")[0].strip())
    return wanted or ["torch", "torchvision"]


def install_commands(python: Path, requirements: Path, index: Optional[str]) -> List[List[object]]:
    """PyTorch first, in one pip call (from ``index`` when given), then everything else."""
    torch_step: List[object] = [python, "-m", "pip", "install", *torch_requirements()]
    if index:
        torch_step += ["--index-url", index]
    return [torch_step, [python, "-m", "pip", "install", "-r", requirements, "-e", ROOT]]


def install_packages(python: Path, requirements: Path) -> None:
    """Install with pip's own progress, a line per step saying what comes next."""
    index = torch_index()
    if index and DRY_RUN:
        print(f"# torch and torchvision from {index} (no NVIDIA GPU found, or LESSON_TORCH_INDEX); "
              f"if it cannot be reached within {PROBE_SECONDS:g} s, the first command runs without "
              f"--index-url instead", flush=True)
    elif index:
        problem = index_problem(index)
        if problem:
            print(f"Cannot reach {index} ({problem}): installing PyTorch from the default index instead.",
                  flush=True)
            index = None
    torch_step, rest = install_commands(python, requirements, index)
    where = f"PyTorch's CPU-only index, {index}" if index == TORCH_CPU_INDEX else (index or "the default index")
    print(f"Step 1 of 2: torch and torchvision from {where} (the largest download) ...", flush=True)
    run(*torch_step)
    print(f"Step 2 of 2: the lesson's other packages ({requirements.name}) and the helpers ...", flush=True)
    run(*rest)


def ensure_venv(developer: bool) -> Path:
    """Create .venv when missing and install what the lesson (and, for developers, the tests) need."""
    python = venv_python()
    if not python.exists():
        print(f"Creating the virtual environment in {VENV} ...", flush=True)
        if DRY_RUN:
            print("+", shown([sys.executable, "-m", "venv", VENV]), flush=True)
        else:
            venv.EnvBuilder(with_pip=True).create(VENV)
    requirements = DEVELOPER_REQUIREMENTS if developer else LEARNER_REQUIREMENTS
    inputs = [LEARNER_REQUIREMENTS, requirements, ROOT / "pyproject.toml"]
    stamp_text = hashlib.sha256(b"".join(path.read_bytes() for path in inputs)).hexdigest()
    stamp = VENV / f".installed-{'dev' if developer else 'learner'}"
    up_to_date = stamp.exists() and stamp.read_text() == stamp_text
    if DRY_RUN and up_to_date:
        print(f"# {VENV.name} is up to date; after a change of {requirements.name} or pyproject.toml "
              f"the set-up would run:", flush=True)
    if not up_to_date or DRY_RUN:
        install_packages(python, requirements)
    if not up_to_date and not DRY_RUN:
        stamp.write_text(stamp_text)
    if not DRY_RUN:
        quiet_jupyterlab()
    return python


def quiet_jupyterlab() -> None:
    """No news pop-up and no update check when JupyterLab starts (settings in .venv only)."""
    settings = VENV / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"@jupyterlab/apputils-extension:notification":
                                    {"fetchNews": "false", "checkForUpdates": False}}, indent=2))


MISSING_DATA = """
Stopped before starting JupyterLab: the lesson's images are missing (see the lines above), and
every notebook stops at its first cell without them. What to do:
  - connect to the internet and run this again, or
  - set LESSON_DATA_MIRROR to your instructor's folder and run this again (learners/setup.md: "Offline: an instructor's USB stick").
To start JupyterLab anyway: make lab ARGS=--anyway   (or: python lesson.py lab --anyway)"""


def setup(developer: bool = False) -> tuple:
    """Install the packages (they must install), then fetch the lesson's data.

    Returns the venv's Python and whether the data is all there (missing data does not stop the
    set-up: the caller decides; the checker says what to do).
    """
    python = ensure_venv(developer)
    data_ok = run(python, "-m", "helpers.setup", must_succeed=False) == 0
    if not data_ok:
        print("WARNING: some lesson data is missing (see above); the lesson needs it.", flush=True)
    return python, data_ok


def nbval_arguments() -> List[str]:
    """What makes pytest run every learners' notebook with nbval too (the lesson's design: nbval
    checks that each cell runs; ``--nbval-lax``: outputs are not compared), in this environment's
    kernel. The handouts are left to the Run All harness: their cells are mostly empty."""
    notebooks = sorted([*(ROOT / "notebooks").glob("*.ipynb"), *(ROOT / "notebooks" / "self-study").glob("*.ipynb")])
    return ["--nbval-lax", "--nbval-current-env", *(str(path.relative_to(ROOT)) for path in notebooks)]


def test_environment() -> dict:
    """Tests run offline, with the stand-in model and a non-interactive matplotlib."""
    env = dict(os.environ)
    env.setdefault("LESSON_OFFLINE", "1")
    env.setdefault("LESSON_MODEL", "efficientnet_lite0")
    env["MPLBACKEND"] = "Agg"
    return env


# ---------------------------------------------------------------- the Carpentries Workbench

WORKBENCH_R = ROOT / "tools" / "workbench.R"
#: sandpaper's own minimum (its check_pandoc()).
PANDOC_MINIMUM = (2, 11)
R_UNIVERSE = ('install.packages(c("sandpaper", "varnish", "pegboard", "tinkr"), '
              'repos = c("https://carpentries.r-universe.dev", "https://cloud.r-project.org"))')
MISSING_R = ("R is missing (no Rscript found): install R, then run this again. Linux: sudo apt install r-base "
             "(Debian, Ubuntu) or sudo dnf install R (Fedora); macOS: brew install r, or the installer from "
             "https://cloud.r-project.org; Windows: winget install RProject.R, or the installer from "
             "https://cloud.r-project.org.")
MISSING_PANDOC = ("pandoc {minimum} or newer is missing{found}: install it, then run this again. Linux: sudo apt "
                  "install pandoc (Debian 12, Ubuntu 24.04 or newer; older ones: the .deb from "
                  "https://pandoc.org/installing.html); macOS: brew install pandoc; Windows: winget install "
                  "JohnMacFarlane.Pandoc.")
MISSING_SANDPAPER = ("The R package sandpaper (the Carpentries Workbench) is missing: in R, on Linux, macOS and "
                     "Windows alike, run " + R_UNIVERSE + " ; offline, set LESSON_R_PACKAGES to a folder of "
                     "source packages (.tar.gz) and run this again.")
WORKBENCH_FAILED = ("Stopped: the Carpentries Workbench found problems in the lesson (listed above); nothing was "
                    "built. Fix them and run this again.")


def find_rscript(which: Callable[[str], Optional[str]] = shutil.which,
                 platform: str = sys.platform) -> Optional[str]:
    """R's command-line runner: on PATH, else where R's installers put it (Windows, macOS)."""
    found = which("Rscript")
    if found:
        return found
    if platform == "win32":        # R's Windows installer does not add itself to PATH
        base = Path(os.environ.get("ProgramFiles", r"C:\Program Files"), "R")
        installs = sorted(base.glob("R-*/bin/Rscript.exe"),
                          key=lambda path: version_tuple(path.parent.parent.name[2:]))
        return str(installs[-1]) if installs else None
    framework = Path("/Library/Frameworks/R.framework/Resources/bin/Rscript")
    return str(framework) if platform == "darwin" and framework.exists() else None


def version_tuple(text: str) -> Tuple[int, ...]:
    """'2.17.1.1' as (2, 17, 1, 1) and R's '0.7-9' as (0, 7, 9); None or '' as ()."""
    return tuple(int(part) for part in re.findall(r"\d+", text or ""))


def r_versions(rscript: str, packages: List[str] = ()) -> Dict[str, Optional[str]]:
    """The versions of R, pandoc, sandpaper and ``packages`` that ``rscript`` sees (None: missing)."""
    result = subprocess.run([rscript, str(WORKBENCH_R), "check", *packages], cwd=ROOT,
                            capture_output=True, text=True)
    versions: Dict[str, Optional[str]] = {}
    for line in result.stdout.splitlines():
        name, _, version = line.strip().partition(" ")
        if name:
            versions[name] = None if version.strip() in {"", "-"} else version.strip()
    if result.returncode != 0 or "R" not in versions:
        raise SystemExit(f"Could not ask R what is installed ({rscript} {WORKBENCH_R} check):\n{result.stderr}")
    return versions


def workbench_problems(versions: Mapping[str, Optional[str]]) -> List[str]:
    """One line for each thing the Workbench needs and R does not find: pandoc, then sandpaper.

    >>> workbench_problems({"R": "4.2.2", "pandoc": "2.17.1.1", "sandpaper": "0.20.2"})
    []
    """
    problems = []
    pandoc = versions.get("pandoc")
    if not pandoc or version_tuple(pandoc) < PANDOC_MINIMUM:
        problems.append(MISSING_PANDOC.format(minimum=".".join(map(str, PANDOC_MINIMUM)),
                                              found=f" (R finds pandoc {pandoc})" if pandoc else ""))
    if not versions.get("sandpaper"):
        problems.append(MISSING_SANDPAPER)
    return problems


def _description(text: str) -> Dict[str, str]:
    """The fields of an R DESCRIPTION file (continuation lines start with a space)."""
    fields: Dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if line[:1].isspace() and key:
            fields[key] += " " + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip()
            fields[key] = value.strip()
    return fields


def r_source_packages(folder: Path) -> List[Tuple[str, str, Path]]:
    """(name, version, file) of each R source package (``*.tar.gz``) in ``folder``, every package after
    those of the folder it needs (Depends, Imports, LinkingTo), so that they install in this order."""
    packages: Dict[str, Tuple[str, Path, set]] = {}
    for path in sorted(Path(folder).glob("*.tar.gz")):
        with tarfile.open(path) as archive:
            member = next((m for m in archive.getmembers() if re.fullmatch(r"[^/]+/DESCRIPTION", m.name)), None)
            if member is None:
                raise SystemExit(f"{path} is not an R source package (it holds no PACKAGE/DESCRIPTION)")
            fields = _description(archive.extractfile(member).read().decode("utf-8", "replace"))
        needs = " ".join(fields.get(key, "") for key in ("Depends", "Imports", "LinkingTo"))
        names = {part.strip() for part in re.sub(r"\([^)]*\)", "", needs).split(",")}
        packages[fields["Package"]] = (fields.get("Version", ""), path, names)
    ordered: List[Tuple[str, str, Path]] = []

    def place(name: str, trail: Tuple[str, ...]) -> None:
        if name in trail:
            raise SystemExit(f"The R packages in {folder} need each other in a circle: {' -> '.join(trail + (name,))}")
        if name not in packages or any(name == done for done, _, _ in ordered):
            return
        version, path, needs = packages[name]
        for needed in sorted(needs):
            place(needed, trail + (name,))
        ordered.append((name, version, path))

    for name in packages:
        place(name, ())
    return ordered


def install_r_packages(rscript: str, folder: Path) -> None:
    """Install the source packages in ``folder`` that R does not have at their version."""
    if not Path(folder).is_dir():
        raise SystemExit(f"LESSON_R_PACKAGES={folder} is not a folder: point it at a folder of R source "
                         f"packages (.tar.gz), or unset it.")
    packages = r_source_packages(Path(folder))
    if not packages:
        raise SystemExit(f"LESSON_R_PACKAGES={folder} holds no R source packages (.tar.gz).")
    installed = r_versions(rscript, [name for name, _, _ in packages])
    wanted = [(name, version, path) for name, version, path in packages
              if version_tuple(installed.get(name)) != version_tuple(version)]
    if not wanted:
        print(f"The R packages in {folder} are installed already.", flush=True)
        return
    print(f"Installing {len(wanted)} R package(s) from {folder}: {', '.join(name for name, _, _ in wanted)} ...",
          flush=True)
    run(rscript, WORKBENCH_R, "install", *[path.resolve() for _, _, path in wanted])
    if DRY_RUN:
        return
    now = r_versions(rscript, [name for name, _, _ in wanted])
    failed = [f"{name} {version}" for name, version, _ in wanted
              if version_tuple(now.get(name)) != version_tuple(version)]
    if failed:
        raise SystemExit(f"Installing from {folder} failed for {', '.join(failed)} (R's messages are above): "
                         f"a package the folder lacks may be missing; install it, then run this again.")


#: The Workbench's links to the lesson's repository, as varnish writes them when config.yaml's source is
#: empty ("/edit/main/...", "/blob/main/...", "/"), and its Contact link when contact is: they lead nowhere.
LINKS_TO_NOWHERE = re.compile(r'\s*\|?\s*<a href="(?:/(?:edit|blob)/[^"]*|/)">[^<]*(?:<i [^>]*></i>)?\s*</a>')
CONTACT_TO_NOBODY = re.compile(r'\s*\|?\s*<a href="mailto:">[^<]*</a>')


def config_value(key: str, config: Optional[Path] = None) -> str:
    """A top-level ``key: 'value'`` of config.yaml ("" when empty or missing)."""
    text = (config or ROOT / "config.yaml").read_text(encoding="utf-8")
    match = re.search(rf"^{re.escape(key)}:\s*(['\"]?)(.*?)\1\s*(?:#.*)?$", text, flags=re.MULTILINE)
    return match.group(2).strip() if match else ""


def without_links_to_nowhere(site: Path, source: str, contact: str) -> int:
    """Take the Workbench's source, edit and contact links out of the built pages while config.yaml
    has no source (contact): the lesson has no public home yet. Returns how many pages changed."""
    changed = 0
    for page in site.rglob("*.html"):
        text = original = page.read_text(encoding="utf-8")
        if not source:
            text = re.sub(r"\s*\|\s*(</p>)", r"\1", LINKS_TO_NOWHERE.sub("", text))
        if not contact:
            text = CONTACT_TO_NOBODY.sub("", text)
        if text != original:
            page.write_text(text, encoding="utf-8")
            changed += 1
    return changed


def workbench() -> int:
    """Validate the lesson with the Carpentries Workbench (headings too), then build it in site/."""
    rscript = find_rscript()
    if rscript is None:
        print(MISSING_R, flush=True)
        return 1
    folder = os.environ.get("LESSON_R_PACKAGES", "").strip()
    if folder:
        install_r_packages(rscript, Path(folder))
    problems = workbench_problems(r_versions(rscript))
    for problem in problems:
        print(problem, flush=True)
    if problems:
        return 1
    if run(rscript, WORKBENCH_R, "validate", ROOT, must_succeed=False) != 0:
        print(WORKBENCH_FAILED, flush=True)
        return 1
    run(rscript, WORKBENCH_R, "build", ROOT)
    source, contact = config_value("source"), config_value("contact")
    if not DRY_RUN and not (source and contact):
        without_links_to_nowhere(ROOT / "site" / "docs", source, contact)
        print(f"config.yaml has no {' and no '.join(k for k, v in (('source', source), ('contact', contact)) if not v)} "
              f"yet (the lesson's public home): the pages leave those links out (README: \"When the lesson gets "
              f"its public home\").", flush=True)
    if not DRY_RUN:
        print(f"The Workbench site is in {ROOT / 'site' / 'docs'}: open index.html there in a browser "
              f"(instructor/ holds the instructors' view).", flush=True)
    return 0


def main(argv: list[str]) -> int:
    global DRY_RUN
    DRY_RUN = "--dry-run" in argv
    argv = [arg for arg in argv if arg != "--dry-run"]
    command = argv[0] if argv else "help"
    if command == "setup":
        python = ensure_venv(developer="--dev" in argv)
        run(python, "-m", "helpers.setup")
    elif command == "lab":
        anyway = "--anyway" in argv
        python, data_ok = setup()
        if not data_ok and not anyway:
            print(MISSING_DATA, flush=True)
            return 1
        as_root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []   # containers
        options = [arg for arg in argv[1:] if arg != "--anyway"]
        run(python, "-m", "jupyter", "lab", "--notebook-dir", ROOT / "notebooks", *as_root, *options,
            "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate")
    elif command == "test":
        python = ensure_venv(developer=True)
        run(python, "-m", "helpers.setup", env=test_environment())
        # on every core: each notebook runs once per model, its tests on one worker (tests/notebook_runs.py);
        # in the same run, nbval runs every learners' notebook too, each on one worker
        run(python, "-m", "pytest", "tests", *nbval_arguments(), "-n", "auto", "--dist", "loadgroup",
            "--durations=25", *argv[1:], env=test_environment())
    elif command == "check":
        python, _ = setup()
        run(python, "-m", "helpers.check")
    elif command == "site":
        python, _ = setup(developer=True)
        run(python, ROOT / "tools" / "site.py", *argv[1:])
    elif command == "mirror":
        python = ensure_venv(developer=False)
        folders = [arg for arg in argv[1:] if not arg.startswith("--")]     # an option is not a folder
        folder = Path(folders[0]) if folders else ROOT / "lesson-mirror"
        run(python, "-m", "helpers.setup", "--mirror-out", folder.resolve())
    elif command == "notebooks":
        python = ensure_venv(developer=True)
        run(python, ROOT / "tools" / "notebooks.py", *argv[1:])
    elif command == "outputs":
        python = ensure_venv(developer=True)
        run(python, ROOT / "tools" / "outputs.py", *argv[1:])
    elif command == "links":
        python = ensure_venv(developer=True)
        run(python, ROOT / "tools" / "links.py", *argv[1:])
    elif command == "preflight":
        python = ensure_venv(developer=False)
        run(python, "-m", "helpers.claims", *argv[1:])
    elif command == "workbench":
        return workbench()
    else:
        known = command in {"help", "-h", "--help"}
        if not known:
            print(f"unknown command: {command}\n")
        print(__doc__)
        return 0 if known else 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
