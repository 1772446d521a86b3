"""`python -m bot --check`: imports the bot file and loads the VAD, offline, and exits 0."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.bot.conftest import REPO, bot_env, unshare_network_prefix

PARROT = str(REPO / "examples" / "parrot" / "bot.py")
ASSISTANT = str(REPO / "examples" / "assistant" / "bot.py")


def run_check(*args: str, prefix: list[str] | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "bot", "--check", *args],
        cwd=REPO,
        env=bot_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def checked_event(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert result.returncode == 0, result.stderr[-2000:]
    (line,) = result.stdout.splitlines()
    event: dict[str, str] = json.loads(line)
    assert event["event"] == "checked"
    return event


def test_check_exits_0_with_the_parrot_by_default() -> None:
    event = checked_event(run_check())
    assert (event["transport"], event["bot"]) == ("webrtc", PARROT)


def test_check_exits_0_without_network() -> None:
    event = checked_event(run_check(prefix=unshare_network_prefix()))
    assert event["bot"] == PARROT


def test_check_imports_the_bot_file_named_by_bot_file_without_network() -> None:
    event = checked_event(run_check(prefix=unshare_network_prefix(), BOT_FILE=ASSISTANT))
    assert event["bot"] == ASSISTANT


def test_check_builds_the_daily_transport_without_network() -> None:
    event = checked_event(
        run_check(prefix=unshare_network_prefix(), DAILY_ROOM_URL="https://example.daily.co/room", DAILY_TOKEN="t")
    )
    assert event["transport"] == "daily"


def test_bare_check_in_a_daily_only_image_checks_daily_without_a_room_url() -> None:
    """The bot image sets BOT_TRANSPORT=daily; `--check` alone must pass there, offline."""
    event = checked_event(run_check(prefix=unshare_network_prefix(), BOT_TRANSPORT="daily"))
    assert (event["transport"], event["bot"]) == ("daily", PARROT)


IMPORTED_AFTER_CHECK = (
    "import sys; from bot.app import main; main({args!r}); print(sorted({{m.split('.')[0] for m in sys.modules}}))"
)


def top_level_modules_after_check(*args: str, **env: str) -> set[str]:
    code = IMPORTED_AFTER_CHECK.format(args=["--check", *args])
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=bot_env(**env), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # After main() stdout is the events' alone: the script's own print lands on stderr, as a bot's does.
    return set(json.loads(result.stderr.splitlines()[-1].replace("'", '"')))


@pytest.mark.parametrize(
    ("args", "loaded", "not_loaded"),
    [
        ((), "aiortc", "daily"),
        (("--room-url", "https://example.daily.co/room"), "daily", "aiortc"),
    ],
    ids=["webrtc-never-imports-daily", "daily-never-imports-aiortc"],
)
def test_each_transport_imports_only_its_own_client_library(
    args: tuple[str, ...], loaded: str, not_loaded: str
) -> None:
    modules = top_level_modules_after_check(*args)
    assert loaded in modules
    assert not_loaded not in modules


def test_the_parrot_imports_no_service_sdks_or_fastapi() -> None:
    modules = top_level_modules_after_check()
    assert not modules & {"deepgram", "openai", "fastapi", "uvicorn"}
