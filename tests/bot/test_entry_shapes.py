"""Scripts that pipecat-examples' own servers start, run unchanged by the host (bot/entry_shapes.py):
`run_bot(webrtc_connection)` over a real aiortc peer, `main(room_url, token)` and an argparse `main()`
on a Daily session (offline: the join fails, after the room and token reached the script), each
refusing a session of a transport it cannot take with the way out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.entry_shapes import takes
from bot.user_bot import load_user_bot
from tests.bot.conftest import SPEECH_WAV, SpawnBot, bot_env, unshare_network_prefix
from tests.bot.test_user_bots import BOTS, first_loud_audio, spawn_user_bot
from tests.support.audio import BOT_AUDIO_RMS
from tests.support.webrtc_client import WebRTCClient

pytestmark = pytest.mark.timeout(90)

ROOM = "https://example.daily.co/shapes"
TOKEN = "bot-token-for-shapes"


async def run_bot(webrtc_connection: object) -> None: ...
async def run_bot_with_defaults(webrtc_connection: object, voice: str = "Puck", *, debug: bool = False) -> None: ...
async def run_bot_wanting_more(webrtc_connection: object, voice: str) -> None: ...
def run_bot_plain(webrtc_connection: object) -> None: ...
async def main_room(room_url: str, token: str | None = None) -> None: ...
async def main_url(url: str, token: str) -> None: ...
async def main_bare() -> None: ...
async def main_devices(input_device: int, output_device: int) -> None: ...


@pytest.mark.parametrize(
    ("function", "names", "expected"),
    [
        (run_bot, ("webrtc_connection",), True),
        (run_bot_with_defaults, ("webrtc_connection",), True),
        (run_bot_wanting_more, ("webrtc_connection",), False),  # nothing to hand it `voice`
        (run_bot_plain, ("webrtc_connection",), False),  # the host awaits what it runs
        (main_room, ("room_url", "token"), True),
        (main_url, ("room_url", "token"), False),
        (main_bare, (), True),
        (main_room, (), False),
        (main_devices, ("room_url", "token"), False),
        (None, (), False),
    ],
)
def test_an_entry_shape_is_known_by_its_parameters(function: Any, names: tuple[str, ...], expected: bool) -> None:
    assert takes(function, names) is expected


@pytest.mark.parametrize(
    ("name", "entry", "transport"),
    [
        ("webrtc_run_bot", "run_bot(webrtc_connection)", "webrtc"),
        ("main_room_token", "main(room_url, token)", "daily"),
        ("main_reads_its_room", "main()", "daily"),
        ("echo", "bot()", None),
    ],
)
def test_a_file_without_bot_loads_by_its_entry_shape(name: str, entry: str, transport: str | None) -> None:
    loaded = load_user_bot(BOTS / f"{name}.py")
    assert (loaded.entry, loaded.transport) == (entry, transport)


async def test_a_whatsapp_shaped_run_bot_is_handed_the_webrtc_connection_and_talks(spawn_bot: SpawnBot) -> None:
    bot = spawn_user_bot(spawn_bot, "webrtc_run_bot")
    async with WebRTCClient(bot.offer_url) as client:
        await first_loud_audio(client)  # its greeting
        result = await client.talk(SPEECH_WAV, listen_seconds=3.0)
    assert result.segments and max(s.peak_rms for s in result.segments) > BOT_AUDIO_RMS
    assert bot.wait(15) == 0
    assert bot.next_event("ended", 5)["reason"] == "peer_disconnected"


def failed_daily_session(spawn_bot: SpawnBot, path: Path) -> tuple[str, str]:
    """The `detail` of the session the bot file at `path` fails on a Daily room (exit 4), and the host's log."""
    env = bot_env(BOT_FILE=str(path), DAILY_ROOM_URL=ROOM, DAILY_TOKEN=TOKEN)
    bot = spawn_bot("--connect-timeout", "30", env=env, prefix=unshare_network_prefix())
    assert bot.wait(30) == 4
    ended = bot.next_event("ended", 5)
    assert (ended["reason"], ended["exit_code"]) == ("bot_failed", 4)
    return ended["detail"], bot.stderr_tail(200)


def test_a_whatsapp_shaped_run_bot_on_a_daily_session_fails_it_naming_the_way_out(spawn_bot: SpawnBot) -> None:
    path = BOTS / "webrtc_run_bot.py"
    detail, log = failed_daily_session(spawn_bot, path)
    assert detail == (
        f"{path}: run_bot(webrtc_connection) is handed a WebRTC connection, and this session is Daily's "
        '(DailyRunnerArguments): start WebRTC sessions (POST /start {"transport": "webrtc"}, with webrtc in the '
        "dispatcher's TRANSPORTS), or add `async def bot(runner_args)` that builds its transport with Pipecat's "
        "create_transport(runner_args, …) for this one"
    )
    assert "Traceback" not in log


@pytest.mark.parametrize(
    ("name", "seen"),
    [
        ("main_room_token", {"room_url": ROOM, "token": TOKEN}),
        # instant-voice's: its command line as its own server writes it, and its fallback variable
        ("main_reads_its_room", {"room_url": ROOM, "token": TOKEN, "sample_room": ROOM}),
    ],
)
def test_a_main_shaped_script_joins_the_sessions_room_with_the_bots_token(
    spawn_bot: SpawnBot, tmp_path: Path, name: str, seen: dict[str, str]
) -> None:
    record = tmp_path / "seen.json"
    env = bot_env(BOT_FILE=str(BOTS / f"{name}.py"), DAILY_ROOM_URL=ROOM, DAILY_TOKEN=TOKEN,
                  TEST_BOT_RECORD_TO=str(record))  # fmt: skip
    bot = spawn_bot("--connect-timeout", "3", env=env, prefix=unshare_network_prefix())
    assert bot.wait(30) == 3  # no network here: the join fails, as a bot of any shape's would
    assert bot.next_event("ended", 5)["reason"] in ("join_failed", "connect_timeout")
    assert json.loads(record.read_text()) == seen
    assert f"Joining {ROOM}" in bot.stderr_tail(10_000)
    assert TOKEN not in bot.stderr_tail(10_000)


ARGPARSE_WANTS_MORE = '''import argparse


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-u", "--url", required=True)
    parser.add_argument("--voice", required=True)
    parser.parse_args()
'''


def test_a_main_whose_argparse_wants_more_than_the_room_fails_its_session_naming_why(
    spawn_bot: SpawnBot, tmp_path: Path
) -> None:
    """argparse exits (SystemExit) on a command line it cannot parse: the session fails with the file, the
    line and the way out, and the host still reports its end rather than dying with the event loop."""
    path = tmp_path / "bot.py"
    path.write_text(ARGPARSE_WANTS_MORE)
    detail, log = failed_daily_session(spawn_bot, path)
    assert detail == (
        f"{path}:8: main() raised SystemExit: 2 (a script's exit: sys.exit(), or argparse refusing its command "
        "line (its message is in the session's log); a main() is given -u ROOM -t TOKEN alone: take other values "
        "from the environment)"
    )
    assert "the following arguments are required: --voice" in log
