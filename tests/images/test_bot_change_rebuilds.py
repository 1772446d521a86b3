"""`pulumi preview`, modelled: a change to the user's bot code is a change to the bot image, and a
change to a file the build leaves out is none.

The program runs twice under the Pulumi mocks on a copy of a bot project, with one file edited in
between. What the first run stored (the mocks' state: inputs, plus the contextHash docker-build
computes from the real files) is compared with the second run's inputs by docker-build's own Diff
(images/docker_build_model.py, ported from pulumi-docker-build v0.0.22).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pulumi
import pytest

from images.component import PROGRAM_FOLDER
from images.docker_build_model import diff
from stacks.tools.mocks import Registration, run_program, unwrap
from tests.infra.conftest import SECRETS, config_for

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "docker-build:index:Image"


def preview(cloud: str, project: Path) -> dict[str, Registration]:
    """The stack's images by role (bot, dispatcher) after one run of the program."""
    run = run_program(config_for(cloud, {"botProject": str(project)}), list(SECRETS), stack=f"{cloud}-test")
    return {r.name.removeprefix(f"voicefleet-{cloud}-test-"): r for r in run.of_type(IMAGE)}


def changes(before: dict[str, Registration], after: dict[str, Registration]) -> dict[str, set[str]]:
    """Per image, what docker-build's Diff reports between the state `before` stored and `after`'s inputs."""
    assert before.keys() == after.keys()
    return {role: diff(unwrap(before[role].outputs), unwrap(after[role].inputs), PROGRAM_FOLDER) for role in before}


@pytest.fixture
def parrot(tmp_path: Path) -> Path:
    """A copy of the parrot example with what a developer's folder also holds: a venv, bytecode, keys."""
    project = shutil.copytree(ROOT / "examples" / "parrot", tmp_path / "my-bot")
    for name, text in {".venv/lib/python3.11/site-packages/x.py": "x = 1\n", "__pycache__/bot.cpython-311.pyc": "pyc",
                       ".env": "DAILY_API_KEY=k\n", "notes/todo.md": "later\n", ".dockerignore": "notes\n"}.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    return project


def append(text: str) -> Callable[[Path], object]:
    def edit(path: Path) -> None:
        path.write_text(path.read_text() + text)
    return edit


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_a_bot_project_whose_only_change_is_bot_py_previews_a_bot_image_change(cloud: str, parrot: Path) -> None:
    before = preview(cloud, parrot)
    append("\n# a new greeting\n")(parrot / "bot.py")
    changed = changes(before, preview(cloud, parrot))
    assert changed["bot"] == {"labels"}  # docker-build's own contextHash does not see bot.py
    assert changed["dispatcher"] == set()


def add(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("new\n")


def successive_previews(project: Path, edits: list[tuple[str, Callable[[Path], object]]]) -> list[dict[str, set[str]]]:
    """What each preview shows after one more edit, against the state the previous one left (an `up` each)."""
    state, shown = preview("aws", project), []
    for path, edit in edits:
        edit(project / path)
        after = preview("aws", project)
        shown.append(changes(state, after))
        state = after
    return shown


def test_every_other_file_the_image_takes_changes_the_bot_image_too(parrot: Path) -> None:
    shown = successive_previews(parrot, [
        ("parrot.py", append("\n# a module bot.py imports\n")),
        ("assets/greeting.txt", add),  # a new file in a new folder
        ("turn_vad.py", lambda path: path.chmod(0o755)),
        ("assets/greeting.txt", lambda path: path.rename(path.with_name("hello.txt"))),
    ])
    assert [changed["bot"] for changed in shown] == [{"labels"}] * 4


def test_an_edit_of_a_file_the_build_leaves_out_previews_no_change(parrot: Path) -> None:
    ignored = [".venv/lib/python3.11/site-packages/x.py", "__pycache__/bot.cpython-311.pyc", ".env", "notes/todo.md"]
    shown = successive_previews(parrot, [(path, append("changed\n")) for path in ignored])
    assert shown == [{"bot": set(), "dispatcher": set()}] * len(ignored)


def test_a_lock_change_was_already_seen_by_docker_builds_own_hash(parrot: Path) -> None:
    """The control: pyproject.toml and uv.lock pass the repository's allow-list, so docker-build's own
    hash changes with them; the label changes too, as with any project file."""
    before = preview("aws", parrot)
    append("\n")(parrot / "uv.lock")
    assert changes(before, preview("aws", parrot))["bot"] == {"contextHash", "labels"}


def test_a_project_whose_ignore_file_buildkit_would_refuse_fails_the_preview_with_the_reason(parrot: Path) -> None:
    (parrot / ".dockerignore").write_text("notes/[\n")
    with pytest.raises(pulumi.RunError, match=r"bot project .*my-bot: .*\.dockerignore: invalid \.dockerignore"):
        preview("aws", parrot)  # a RunError: Pulumi prints its message without a traceback
