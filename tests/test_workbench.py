"""`make workbench` (`python lesson.py workbench`): one line saying how to install each missing
tool (R, pandoc, sandpaper), local source packages from LESSON_R_PACKAGES, and a non-zero exit on
any problem sandpaper's validate_lesson(headings = TRUE) reports. The tests of the pages it builds
are in test_workbench_site.py. Tests that need R are skipped where it is missing."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Dict, Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import lesson  # noqa: E402

EPISODES = sorted((ROOT / "episodes").glob("*.md"))
#: What sandpaper reads, and what `python lesson.py workbench` needs to run in a copy.
LESSON_FOLDERS = ("episodes", "learners", "instructors", "profiles")


def copy_lesson(destination: Path) -> Path:
    """What the Workbench and `lesson.py workbench` read: the top-level files, the lesson's folders
    and tools/workbench.R (no .venv, notebooks or earlier builds), in a new git repository."""
    destination.mkdir(parents=True)
    for path in ROOT.iterdir():
        # not .git: in a git worktree it is a file pointing at the checkout's repository, and the
        # copy's `git add`/`git commit` below would then commit into the developer's branch
        if path.is_file() and path.name != ".git":
            shutil.copy2(path, destination / path.name)
    for folder in LESSON_FOLDERS:
        shutil.copytree(ROOT / folder, destination / folder)
    (destination / "tools").mkdir()
    shutil.copy2(lesson.WORKBENCH_R, destination / "tools" / lesson.WORKBENCH_R.name)
    # sandpaper reads the lesson's git history (page dates, edit links): a lesson is a repository
    git = ["git", "-C", str(destination), "-c", "user.name=test", "-c", "user.email=test@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "lesson copy"], check=True)
    return destination


def workbench_missing() -> Optional[str]:
    """Why the Workbench cannot run here (R or sandpaper missing), or None."""
    rscript = lesson.find_rscript()
    if rscript is None:
        return "R is not installed (no Rscript)"
    if not lesson.r_versions(rscript).get("sandpaper"):
        return "the R package sandpaper is not installed"
    return None


def run_workbench(folder: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    """`python lesson.py workbench` in ``folder``, offline, with ``env`` on top of this process's."""
    environment = dict(os.environ, LESSON_OFFLINE="1")
    environment.pop("LESSON_R_PACKAGES", None)
    environment.update(env)
    return subprocess.run([sys.executable, str(folder / "lesson.py"), "workbench"], cwd=folder,
                          env=environment, capture_output=True, text=True, timeout=900)


def lines(result: subprocess.CompletedProcess):
    return [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]


needs_r = pytest.mark.skipif(lesson.find_rscript() is None, reason="R is not installed (no Rscript)")


# ------------------------------------------------------------------------ what is missing, and how to get it

def test_without_r_one_line_says_how_to_install_it(tmp_path):
    if lesson.find_rscript(which=lambda name: None) is not None:
        pytest.skip("R is installed where lesson.py looks besides PATH (macOS's R.framework)")
    result = run_workbench(PATH=str(tmp_path))                    # a PATH with nothing on it
    assert result.returncode == 1
    assert lines(result) == [lesson.MISSING_R]
    for where in ("Linux:", "macOS:", "Windows:", "https://cloud.r-project.org"):
        assert where in lesson.MISSING_R


def test_on_windows_rscript_is_found_in_the_newest_r_install(tmp_path, monkeypatch):
    for version in ("4.3.1", "4.10.0", "4.9.2"):
        (tmp_path / "R" / f"R-{version}" / "bin").mkdir(parents=True)
        (tmp_path / "R" / f"R-{version}" / "bin" / "Rscript.exe").touch()
    monkeypatch.setenv("ProgramFiles", str(tmp_path))
    found = lesson.find_rscript(which=lambda name: None, platform="win32")
    assert found == str(tmp_path / "R" / "R-4.10.0" / "bin" / "Rscript.exe")
    assert lesson.find_rscript(which=lambda name: None, platform="linux") is None


def test_pandoc_and_sandpaper_get_a_line_each_naming_the_fix():
    assert lesson.workbench_problems({"R": "4.2.2", "pandoc": "2.17.1.1", "sandpaper": "0.20.2"}) == []
    old_pandoc = lesson.workbench_problems({"R": "4.2.2", "pandoc": "2.9.2.1", "sandpaper": "0.20.2"})
    assert len(old_pandoc) == 1
    assert "pandoc 2.11 or newer" in old_pandoc[0] and "(R finds pandoc 2.9.2.1)" in old_pandoc[0]
    nothing = lesson.workbench_problems({"R": "4.2.2", "pandoc": None, "sandpaper": None})
    assert nothing == [lesson.MISSING_PANDOC.format(minimum="2.11", found=""), lesson.MISSING_SANDPAPER]
    for line in nothing:
        assert "\n" not in line and all(system in line for system in ("Linux", "macOS", "Windows"))
    assert 'repos = c("https://carpentries.r-universe.dev", "https://cloud.r-project.org")' in lesson.MISSING_SANDPAPER
    assert "LESSON_R_PACKAGES" in lesson.MISSING_SANDPAPER


def hidden_libraries(tmp_path: Path) -> Dict[str, str]:
    """R's environment with every package library but R's own hidden (sandpaper, rmarkdown ...)."""
    empty = tmp_path / "no-packages"
    empty.mkdir(exist_ok=True)
    return {"R_LIBS": str(empty), "R_LIBS_USER": str(empty), "R_LIBS_SITE": str(empty)}


@needs_r
def test_without_sandpaper_one_line_says_how_to_install_it(tmp_path):
    result = run_workbench(**hidden_libraries(tmp_path))
    assert result.returncode == 1
    assert lines(result) == [lesson.MISSING_SANDPAPER]


@needs_r
def test_without_pandoc_one_line_says_how_to_install_it(tmp_path):
    """A PATH holding every program of this one but pandoc."""
    if lesson.r_versions(lesson.find_rscript()).get("pandoc") is None:
        pytest.skip("pandoc is missing here already")
    programs = tmp_path / "bin"
    programs.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        for program in Path(folder).glob("*") if Path(folder).is_dir() else []:
            if program.name != "pandoc" and not (programs / program.name).exists():
                (programs / program.name).symlink_to(program)
    result = run_workbench(PATH=str(programs), RSTUDIO_PANDOC="")
    assert result.returncode == 1
    assert lines(result) == [lesson.MISSING_PANDOC.format(minimum="2.11", found="")]


# ------------------------------------------------------------------------ LESSON_R_PACKAGES: local source packages

def source_package(folder: Path, name: str, needs: str = "", value: int = 1) -> Path:
    """A minimal R source package ``name``_0.1.0.tar.gz whose function ``answer()`` returns ``value``."""
    files = {
        "DESCRIPTION": (f"Package: {name}\nVersion: 0.1.0\nTitle: Test Package\nDescription: A test.\n"
                        f"License: MIT\nAuthor: Test\nMaintainer: Test <test@example.org>\n"
                        + (f"Imports:\n    {needs}\n" if needs else "")),
        "NAMESPACE": "export(answer)\n",
        "R/answer.R": f"answer <- function() {value}L\n",
    }
    path = folder / f"{name}_0.1.0.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for member, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}/{member}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_local_packages_install_after_the_packages_they_need(tmp_path):
    source_package(tmp_path, "aatop", "zzbase (>= 0.1.0),\n    utils")          # sorts first, needs the last
    source_package(tmp_path, "mmiddle", "zzbase")
    source_package(tmp_path, "zzbase")
    order = [name for name, _, _ in lesson.r_source_packages(tmp_path)]
    assert sorted(order) == ["aatop", "mmiddle", "zzbase"] and order[0] == "zzbase"
    assert [version for _, version, _ in lesson.r_source_packages(tmp_path)] == ["0.1.0"] * 3


def test_local_packages_that_need_each_other_in_a_circle_are_named(tmp_path):
    source_package(tmp_path, "first", "second")
    source_package(tmp_path, "second", "first")
    with pytest.raises(SystemExit, match="circle: first -> second -> first"):
        lesson.r_source_packages(tmp_path)


@needs_r
def test_lesson_r_packages_installs_from_the_folder_then_says_what_is_still_missing(tmp_path):
    folder = tmp_path / "packages"
    folder.mkdir()
    source_package(folder, "aalessontop", "zzlessonbase", value=2)
    source_package(folder, "zzlessonbase", value=1)
    library = tmp_path / "library"
    library.mkdir()
    env = dict(hidden_libraries(tmp_path), R_LIBS=str(library), LESSON_R_PACKAGES=str(folder))
    result = run_workbench(**env)
    assert result.returncode == 1 and result.stdout.splitlines()[-1] == lesson.MISSING_SANDPAPER  # no sandpaper there
    assert "Installing 2 R package(s)" in result.stdout
    assert sorted(path.name for path in library.iterdir()) == ["aalessontop", "zzlessonbase"]
    check = subprocess.run([lesson.find_rscript(), "-e", "cat(aalessontop::answer(), zzlessonbase::answer())"],
                           env={**os.environ, **hidden_libraries(tmp_path), "R_LIBS": str(library)},
                           capture_output=True, text=True)
    assert check.stdout == "2 1"
    again = run_workbench(**env)                                   # installed already: nothing to do
    assert "are installed already" in again.stdout and "Installing" not in again.stdout


def test_lesson_r_packages_must_name_a_folder(tmp_path):
    with pytest.raises(SystemExit, match="is not a folder"):
        lesson.install_r_packages("Rscript", tmp_path / "nowhere")


# ------------------------------------------------------------------------ validation problems stop the build

BREAKAGES = {
    "a link to a missing page": ("\n\nSee [the missing page](no-such-page.md).\n", "no-such-page.md"),
    "a level-1 heading": ("\n\n# A level-one heading\n\nText.\n", "first level heading"),
    "an unknown fenced div": ("\n\n::: challange\n\nA typo in the div's name.\n\n:::\n", "challange"),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_any_validation_problem_stops_with_a_non_zero_exit(breakage, tmp_path):
    reason = workbench_missing()
    if reason:
        pytest.skip(reason)
    copy = copy_lesson(tmp_path / "lesson")
    text, reported = BREAKAGES[breakage]
    episode = copy / "episodes" / EPISODES[-1].name
    episode.write_text(episode.read_text(encoding="utf-8") + text, encoding="utf-8")
    result = run_workbench(copy)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert reported in output and EPISODES[-1].name in output
    assert result.stdout.splitlines()[-1] == lesson.WORKBENCH_FAILED
    assert not (copy / "site" / "docs").exists(), "nothing is built when validation fails"
