"""The bot image's /app: the bot writes a file next to itself by a relative name (pipecat-examples'
Twilio bots save recording_*.wav so) and cannot change its code. The modes images/bot.Dockerfile
gives /app are applied to a real folder here and images/ci/run_image.py's own probe runs in it as
the bot's uid, as the CI image job runs it in the built image."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from images.ci.run_image import PROJECT_FOLDER_MODE, WRITE_PROBE, WRITE_PROBE_REFUSES, project_folder_problems

BOT_UID = BOT_GID = 10001  # images/bot.Dockerfile's user and group
SYSTEM_PYTHON = Path("/usr/bin/python3")  # one the bot's uid may run (the venv's lives under /root)

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not SYSTEM_PYTHON.exists(),
                                reason="needs root to hand a folder to another uid, and a system python")


@pytest.fixture
def app() -> Iterator[Path]:
    """An /app as the image's code stage leaves it: root's files, readable by all, writable by none else."""
    base = Path(tempfile.mkdtemp(prefix="voicefleet-app-", dir="/tmp"))
    base.chmod(0o755)
    folder = base / "app"
    folder.mkdir()
    (folder / "bot.py").write_text("async def bot(runner_args):\n    pass\n")
    (folder / "bot.py").chmod(0o644)
    try:
        yield folder
    finally:
        shutil.rmtree(base)


def probe(folder: Path) -> subprocess.CompletedProcess[str]:
    def as_bot() -> None:
        os.setgroups([])
        os.setgid(BOT_GID)
        os.setuid(BOT_UID)

    return subprocess.run([str(SYSTEM_PYTHON), "-c", WRITE_PROBE], cwd=folder, preexec_fn=as_bot,  # noqa: PLW1509
                          env={"BOT_FILE": str(folder / "bot.py")}, capture_output=True, text=True, timeout=30)


def test_with_the_images_modes_the_bot_writes_next_to_itself_and_never_over_its_code(app: Path) -> None:
    os.chown(app, 0, BOT_GID)
    app.chmod(PROJECT_FOLDER_MODE)
    result = probe(app)
    assert (result.returncode, result.stdout.strip()) == (0, WRITE_PROBE_REFUSES), result.stderr
    assert (app / "bot.py").read_text().startswith("async def bot") and project_folder_problems(app, BOT_GID) == []


def test_a_root_only_folder_is_reported_and_the_bot_cannot_write_there(app: Path) -> None:
    """What the image had before: /app root's 0755, so the example's recording failed."""
    assert "is 0:0 755, not 0:10001 1775" in project_folder_problems(app, BOT_GID)[0]
    result = probe(app)
    assert result.returncode != 0 and "PermissionError" in result.stderr


def test_a_code_file_the_bots_group_may_write_is_reported(app: Path) -> None:
    os.chown(app, 0, BOT_GID)
    app.chmod(PROJECT_FOLDER_MODE)
    (app / "bot.py").chmod(0o664)
    assert project_folder_problems(app, BOT_GID) == ["app has files the bot could change: bot.py"]
