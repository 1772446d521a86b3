"""A bot's Python without its transport's packages (a project that installs only the extras its
transports need): the image build's `--check` and a reserve bot fall back to taking calls when the
closure can; otherwise the bot ends as a configuration error naming the extra to add."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.bot.conftest import REPO, bot_env
from tests.support.venvs import venv_without

PHONE_BOT = str(REPO / "tests" / "fixtures" / "projects" / "twilio_inbound" / "bot.py")


def check(python: Path, transport: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), "-m", "bot", "--check"], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env=bot_env(BOT_TRANSPORT=transport, BOT_FILE=PHONE_BOT), check=False)


def check_webrtc_without_aiortc(tmp_path: Path, bot_file: Path | str) -> subprocess.CompletedProcess[str]:
    """The image check of `bot_file` for WebRTC by a Python with neither aiortc nor FastAPI (no calls either)."""
    return subprocess.run(
        [str(venv_without(tmp_path / "venv", "aiortc", "fastapi")), "-m", "bot", "--check"], cwd=REPO,
        capture_output=True, text=True, timeout=120, env=bot_env(BOT_TRANSPORT="webrtc", BOT_FILE=str(bot_file)),
        check=False,
    )


@pytest.mark.parametrize(("transport", "module"), [("daily", "daily"), ("webrtc", "aiortc")])
def test_the_image_check_of_a_phone_only_closure_checks_calls(tmp_path: Path, transport: str, module: str) -> None:
    done = check(venv_without(tmp_path / "venv", module), transport)
    assert done.returncode == 0, done.stderr[-2000:]
    checked = json.loads(done.stdout.splitlines()[-1])
    assert (checked["event"], checked["transport"], checked["bot"]) == ("checked", "websocket", PHONE_BOT)
    assert f"pipecat-ai[{transport}]" in done.stderr  # the warning names the extra it would take


def test_without_the_transport_and_without_calls_the_bot_ends_naming_the_extra(tmp_path: Path) -> None:
    done = check(venv_without(tmp_path / "venv", "daily", "fastapi"), "daily")
    assert done.returncode == 2, done.stderr[-2000:]
    ended = json.loads(done.stdout.splitlines()[-1])
    assert ended["reason"] == "config_error" and "pipecat-ai[daily]" in ended["detail"], ended
    # A WebRTC project asked for a Daily session: the caller can start with what the bot serves.
    assert "or start sessions with transport 'webrtc', which this bot serves" in ended["detail"], ended


def test_a_daily_only_bot_without_aiortc_is_told_that_the_extra_alone_is_not_enough(tmp_path: Path) -> None:
    daily_only = str(REPO / "tests" / "bots" / "daily_only.py")
    done = check_webrtc_without_aiortc(tmp_path, daily_only)
    assert done.returncode == 2, done.stderr[-2000:]
    ended = json.loads(done.stdout.splitlines()[-1])
    assert "pipecat-ai[webrtc]" in ended["detail"] and "transport 'daily', which this bot serves" in ended["detail"]
    assert ended["detail"].endswith(
        "; and its transport_params has no 'webrtc' entry (only 'daily'), so with the extra the session would "
        "still fail, as under Pipecat's runner: add a 'webrtc' entry too"
    ), ended


def test_a_script_with_main_and_no_bot_is_told_its_own_way_out_not_the_missing_transports(tmp_path: Path) -> None:
    """local-input-select-stt's `main(input_device, output_device)` in a webrtc session: the detail was
    aiortc's missing extra, then "defines no `bot`"; the file's own way out is what applies."""
    script = REPO / "tests" / "bots" / "broken_main_devices.py"
    done = check_webrtc_without_aiortc(tmp_path, script)
    assert done.returncode == 4, done.stderr[-2000:]
    ended = json.loads(done.stdout.splitlines()[-1])
    assert ended["reason"] == "bot_failed", ended
    assert ended["detail"].startswith(f"{script}: defines no `bot`") and "aiortc" not in ended["detail"], ended
    assert "it has `async def main(input_device: int, output_device: int) -> None`" in ended["detail"], ended


def test_a_daily_main_without_aiortc_is_told_the_transport_it_serves(tmp_path: Path) -> None:
    """instant-voice's `single_bot.py` (an argparse `main()`, which the host runs on Daily sessions) checked
    for webrtc without aiortc: the extra alone would not serve it, and the detail says which sessions do."""
    script = REPO / "tests" / "bots" / "main_reads_its_room.py"
    done = check_webrtc_without_aiortc(tmp_path, script)
    assert done.returncode == 2, done.stderr[-2000:]
    ended = json.loads(done.stdout.splitlines()[-1])
    assert "pipecat-ai[webrtc]" in ended["detail"], ended
    assert ended["detail"].endswith(
        "; and its entry point main() serves daily sessions only, so with the extra the session would still "
        "fail: start daily sessions for it"
    ), ended
