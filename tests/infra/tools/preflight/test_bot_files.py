"""The plan's note on bot project files the image takes but the rebuild digest does not count
(stacks/tools/preflight/bot_files.py): a new module not yet added to git would deploy the old bot."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from stacks.tools.mocks import run_program
from stacks.tools.preflight import bot_files
from tests.infra.conftest import SECRETS, config_for

ROOT = Path(__file__).resolve().parents[4]


def _git(repository: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repository), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                   check=True, capture_output=True, timeout=60)


def _checkout(tmp_path: Path) -> Path:
    """The parrot example, committed in a repository of its own."""
    repository = tmp_path / "repo"
    project = shutil.copytree(ROOT / "examples" / "parrot", repository / "bots" / "mine")
    _git(repository, "init", "-q")
    _git(repository, "add", ".")
    _git(repository, "commit", "-q", "-m", "bot")
    return project


def _notes(project: Path) -> list[str]:
    run = run_program(config_for("aws", {"botProject": str(project)}), list(SECRETS), stack="aws-test")
    return bot_files.notes(run.registrations)


def test_a_module_the_image_takes_but_git_does_not_track_is_a_note_naming_it(tmp_path: Path) -> None:
    project = _checkout(tmp_path)
    assert _notes(project) == []  # everything the build takes is tracked
    (project / "greetings.py").write_text("HELLO = 'hi'\n")  # imported by bot.py, not yet `git add`ed
    (project / ".venv").mkdir()
    (project / ".venv" / "x.py").write_text("")  # the image leaves it out: no note
    (note,) = _notes(project)
    assert f"bot project {project}" in note and "1 file(s)" in note and "(greetings.py)" in note
    assert "git add" in note
    _git(project, "add", "greetings.py")
    assert _notes(project) == []


def test_a_file_the_projects_dockerignore_leaves_out_is_no_note(tmp_path: Path) -> None:
    project = _checkout(tmp_path)
    (project / "scratch.txt").write_text("later\n")
    (project / ".dockerignore").write_text("scratch.txt\n")
    _git(project, "add", ".dockerignore")
    assert _notes(project) == []


def test_many_untracked_files_are_named_five_then_counted(tmp_path: Path) -> None:
    project = _checkout(tmp_path)
    for index in range(7):
        (project / f"m{index}.py").write_text("")
    (note,) = _notes(project)
    assert "7 file(s)" in note and "m0.py, m1.py, m2.py, m3.py, m4.py and 2 more" in note


def test_outside_a_checkout_there_is_nothing_to_note(tmp_path: Path) -> None:
    project = shutil.copytree(ROOT / "examples" / "parrot", tmp_path / "mine")
    (project / "greetings.py").write_text("")
    assert _notes(project) == []  # the digest counts every file the build takes there
