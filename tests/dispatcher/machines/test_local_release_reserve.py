"""A local reserve bot of a release: its bot file, its Python, and the image its hello reports.

The interpreter is a wrapper that writes down what the bot was given and exits: a real process
launched the way every local bot is, read back from what it saw.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dispatcher.machines.local.bot_version import fingerprint
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from tests.support.waiting import wait_until


def release_files(tmp_path: Path) -> tuple[Path, Path]:
    stable, canary = tmp_path / "stable" / "bot.py", tmp_path / "canary" / "bot.py"
    for path in (stable, canary):
        path.parent.mkdir()
        path.write_text(f"# {path.parent.name}\nasync def bot(runner_args): pass\n")
    return stable, canary


async def test_an_idle_bot_of_a_release_runs_its_file_with_its_python_and_reports_its_folders_version(tmp_path):
    stable, canary = release_files(tmp_path)
    seen = tmp_path / "seen"
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\necho "$BOT_FILE $BOT_IMAGE_DIGEST $VOICEFLEET_RELEASE" > {seen}\n')
    python.chmod(0o755)
    machines = LocalMachines(LocalSettings(bot_command=(sys.executable, "-c", "pass"), bot_file=stable))
    machines.release_envs = {"canary": {"BOT_PYTHON": str(python)}}
    try:
        await machines.launch_idle("rsv-canary", image=str(canary), release="canary")
        bot_file, image, *_ = wait_until(lambda: seen.exists() and seen.read_text().split(), "the bot's launch")
    finally:
        await machines.aclose()
    assert bot_file == str(canary)
    assert image == fingerprint(canary) == machines.reported_image(str(canary))
    # Each release's bots report their own file's version: a claim tells them apart.
    assert machines.reported_image(str(stable)) == fingerprint(stable) != image
    assert machines.reported_image(None) == machines.bot_image == fingerprint(stable)

