"""The bot project's files as the bot image takes them (images/project_files.py): the same set GNU tar
copies with the Dockerfile's own flags, less what the project's `.dockerignore` keeps BuildKit from
sending; and a digest that changes with them and with nothing else."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from images import project_files
from images.bot_project import BotProjectError
from tests.images.closure import BOT_DOCKERFILE
from tests.images.dockerfile import parse_file

ROOT = Path(__file__).resolve().parents[2]
TRICKY = ["bot.py", "pyproject.toml", "uv.lock", ".venv/bin/python", ".git/HEAD", "lib/__pycache__/m.cpython-311.pyc",
          "lib/m.py", "lib/stale.pyc", "lib/.venv/kept.py", "lib/.git/kept", "lib/.env", ".env", ".env.local",
          ".envrc", "env.txt", "data/model.bin", "__pycache__/bot.cpython-311.pyc", ".dockerignore"]


def _tree(root: Path, names: list[str]) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    return root


def _copy_command() -> list[str]:
    """The code stage's `tar -C /project … -cf - .`, as the Dockerfile writes it."""
    run = next(r for r in parse_file(BOT_DOCKERFILE).stage("code").all("RUN") if "tar -C /project" in r.args)
    command = run.args[run.args.index("tar -C /project"):run.args.index("|")]
    return shlex.split(command)


def _listed(project: Path) -> set[str]:
    return {f"./{path}/" if os.path.isdir(project / path) and not os.path.islink(project / path) else f"./{path}"
            for path, _ in project_files.files(project)} | {"./"}


def test_the_dockerfile_copies_the_project_leaving_out_exactly_copy_excludes() -> None:
    command = _copy_command()
    assert [arg.removeprefix("--exclude=") for arg in command if arg.startswith("--exclude=")] == list(
        project_files.COPY_EXCLUDES)


def test_gnu_tar_with_the_dockerfiles_flags_copies_exactly_the_files_the_digest_covers(tmp_path: Path) -> None:
    project = _tree(tmp_path / "project", TRICKY)
    (project / "empty").mkdir()
    (project / "link.py").symlink_to("lib/m.py")
    (project / ".dockerignore").write_text("# nothing left out\n")
    command = _copy_command()
    command[command.index("/project")] = str(project)
    archive = subprocess.run(command, check=True, capture_output=True, timeout=60).stdout
    listed = subprocess.run(["tar", "-tf", "-"], input=archive, check=True, capture_output=True, timeout=60).stdout
    assert set(listed.decode().split()) == _listed(project)
    assert {"./lib/.venv/kept.py", "./lib/.env", "./.envrc", "./empty/", "./link.py"} <= _listed(project)
    assert not {"./.venv/", "./.git/", "./.env", "./.env.local", "./lib/stale.pyc"} & _listed(project)


def test_what_the_projects_own_dockerignore_leaves_out_is_not_taken(tmp_path: Path) -> None:
    """BuildKit never sends those files (dockerfile frontend 1.7, namedcontext.go:189-234)."""
    project = _tree(tmp_path / "project", ["bot.py", "notebooks/try.ipynb", "data/keep.bin", "data/raw.bin"])
    (project / ".dockerignore").write_text("notebooks\ndata\n!data/keep.bin\n")
    assert [path for path, _ in project_files.files(project)] == [".dockerignore", "bot.py", "data", "data/keep.bin"]


def test_the_parrot_examples_own_files_are_all_taken() -> None:
    tracked = subprocess.run(["git", "ls-files", "examples/parrot"], cwd=ROOT, check=True, capture_output=True,
                             text=True, timeout=60).stdout.split()
    taken = {path for path, _ in project_files.files(ROOT / "examples" / "parrot")}
    assert {Path(name).relative_to("examples/parrot").as_posix() for name in tracked} <= taken


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return _tree(tmp_path / "project", ["bot.py", "lib/m.py", "pyproject.toml"])


def _relink(link: Path, target: str) -> None:
    link.unlink()
    link.symlink_to(target)


# One change after another, each of which the image would show.
CHANGES: list[Callable[[Path], object]] = [
    lambda project: (project / "bot.py").write_text("changed"),
    lambda project: (project / "lib/m.py").rename(project / "lib/n.py"),
    lambda project: (project / "bot.py").chmod(0o755),
    lambda project: (project / "assets").mkdir(),
    lambda project: (project / "l").symlink_to("bot.py"),
    lambda project: _relink(project / "l", "lib"),
]


def test_the_digest_changes_with_content_names_executable_bits_folders_and_links(project: Path) -> None:
    seen = [project_files.digest(project)]
    for change in CHANGES:
        change(project)
        seen.append(project_files.digest(project))
    assert len(set(seen)) == len(CHANGES) + 1
    assert all(digest.startswith("sha256:") and len(digest) == 71 for digest in seen)


def test_the_digest_ignores_what_the_image_does_not_keep_timestamps_group_write_and_left_out_files(
        project: Path) -> None:
    before = project_files.digest(project)
    os.utime(project / "bot.py", (0, 0))
    (project / "lib/m.py").chmod(0o664)  # the Dockerfile's chmod takes group and other write away
    _tree(project, [".venv/x.py", "__pycache__/bot.pyc", ".env", ".git/HEAD"])
    assert project_files.digest(project) == before
    assert project_files.digest(shutil.copytree(project, project.parent / "copy")) == before  # another checkout


def test_an_ignore_file_buildkit_would_refuse_is_a_bot_project_error(project: Path) -> None:
    (project / ".dockerignore").write_text("lib/[\n")
    with pytest.raises(BotProjectError, match=r"\.dockerignore: invalid \.dockerignore pattern 'lib/\['"):
        project_files.digest(project)


def _git(repository: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repository), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                   check=True, capture_output=True, timeout=60)


def test_in_a_git_checkout_untracked_files_do_not_change_the_digest(tmp_path: Path) -> None:
    """Review 5: an editor's backup, a cache or a scratch file made two checkouts of one commit rebuild."""
    repository = tmp_path / "repo"
    project = _tree(repository / "bots" / "mine", ["bot.py", "lib/m.py", "pyproject.toml"])
    _git(repository, "init", "-q")
    _git(repository, "add", ".")
    _git(repository, "commit", "-q", "-m", "bot")
    clean = project_files.digest(project)
    _tree(project, ["bot.py~", ".idea/workspace.xml", "notes/scratch.txt", ".mypy_cache/x.json", "lib/#m.py#"])
    assert project_files.digest(project) == clean
    other = tmp_path / "other"
    _git(tmp_path, "clone", "-q", str(repository), str(other))
    _tree(other / "bots" / "mine", [".vscode/settings.json"])
    assert project_files.digest(other / "bots" / "mine") == clean  # another checkout of the same commit
    (project / "bot.py").write_text("changed")  # a tracked file's edit still counts, committed or not
    edited = project_files.digest(project)
    assert edited != clean
    (project / "lib/new.py").write_text("x")
    _git(repository, "add", "bots/mine/lib/new.py")  # a new module counts once git tracks it
    assert project_files.digest(project) != edited


def test_a_checkout_that_tracks_nothing_of_the_project_digests_every_file_the_build_takes(tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    _tree(repository, ["README.md"])
    _git(repository, "init", "-q")
    _git(repository, "add", ".")
    _git(repository, "commit", "-q", "-m", "readme")
    project = _tree(repository / "mine", ["bot.py", "pyproject.toml"])
    before = project_files.digest(project)
    (project / "bot.py").write_text("changed")
    assert project_files.digest(project) != before


def test_untracked_names_the_files_the_build_takes_that_the_digest_leaves_out(tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    project = _tree(repository / "mine", ["bot.py", "pyproject.toml"])
    _git(repository, "init", "-q")
    _git(repository, "add", ".")
    _git(repository, "commit", "-q", "-m", "bot")
    assert project_files.untracked(project) == []
    _tree(project, ["lib/new.py", "__pycache__/bot.pyc", ".env"])  # only lib/new.py goes into the image
    assert project_files.untracked(project) == ["lib/new.py"]
    assert project_files.untracked(_tree(tmp_path / "loose", ["bot.py"])) == []  # no checkout: all counted
