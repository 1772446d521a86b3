"""The host runs a user's bot file unchanged (`BOT_FILE`): the test bots of tests/bots, each a
Pipecat bot in the canonical shape, under `python -m bot` with a real aiortc peer; and every way a
bot file can be broken, reported with the file and the exception, never hanging."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from pathlib import Path

import pytest
from pipecat.runner.types import SmallWebRTCRunnerArguments
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection

from bot import watch
from bot.lifecycle import EndReason, SessionLifecycle
from bot.runner_args import webrtc_arguments
from bot.user_bot import BotFileError, load_user_bot
from bot.user_session import UserBotSession
from tests.bot.conftest import REPO, SPEECH_WAV, BotProcess, SpawnBot, bot_env
from tests.support.audio import BOT_AUDIO_RMS
from tests.support.connect_until import connect_until
from tests.support.webrtc_client import WebRTCClient

pytestmark = pytest.mark.timeout(90)

BOTS = REPO / "tests" / "bots"
HEARD_WITHIN = 20.0  # a deadline for a loaded machine, not a measure (bench/ measures)


def spawn_user_bot(
    spawn_bot: SpawnBot, name: str | Path, *args: str, wait_ready: bool = True, **env: str
) -> BotProcess:
    path = name if isinstance(name, Path) else BOTS / f"{name}.py"
    return spawn_bot("--connect-timeout", "30", *args, env=bot_env(BOT_FILE=str(path), **env), wait_ready=wait_ready)


async def first_loud_audio(client: WebRTCClient) -> float:
    deadline = asyncio.get_running_loop().time() + HEARD_WITHIN
    while asyncio.get_running_loop().time() < deadline:
        heard = client.result().connect_to_first_audio
        if heard is not None:
            return heard
        await asyncio.sleep(0.05)
    raise AssertionError(f"no bot audio within {HEARD_WITHIN:g}s of connecting")


async def test_an_echo_bot_plays_back_what_the_caller_says(spawn_bot: SpawnBot) -> None:
    bot = spawn_user_bot(spawn_bot, "echo")
    async with WebRTCClient(bot.offer_url) as client:
        result = await client.talk(SPEECH_WAV, listen_seconds=3.0)
    assert result.segments and max(s.peak_rms for s in result.segments) > BOT_AUDIO_RMS


async def test_a_bot_that_greets_first_is_heard_and_gets_the_start_body_and_session_id(
    spawn_bot: SpawnBot, tmp_path: Path
) -> None:
    """One call with tests/bots/body.py, the greeter's pipeline that also records its runner_args: the
    greeting is heard without the caller saying anything, the start body and session id reach the bot,
    and the caller's hang-up ends it with exit 0."""
    record = tmp_path / "seen.json"
    body = {"record_to": str(record), "customer": "c-42"}
    bot = spawn_user_bot(spawn_bot, "body", "--session-id", "s-body", VOICEFLEET_BODY=json.dumps(body))
    async with WebRTCClient(bot.offer_url) as client:
        await first_loud_audio(client)
    seen = json.loads(record.read_text())
    assert seen == {"body": body, "session_id": "s-body", "kind": "SmallWebRTCRunnerArguments"}
    assert bot.wait(15) == 0
    assert bot.next_event("ended", 5)["reason"] == "peer_disconnected"


def test_webrtc_runner_args_are_set_as_pipecats_runner_sets_them() -> None:
    connection = object()
    args = webrtc_arguments(connection, body={"a": 1}, session_id="s-1", idle_timeout=42.0)
    runner_default = SmallWebRTCRunnerArguments(webrtc_connection=connection)
    assert isinstance(args, SmallWebRTCRunnerArguments) and args.webrtc_connection is connection
    assert (args.handle_sigint, args.handle_sigterm) == (runner_default.handle_sigint, runner_default.handle_sigterm)
    assert (args.body, args.session_id, args.pipeline_idle_timeout_secs) == ({"a": 1}, "s-1", 42.0)


SYNTAX_ERROR = "from pipecat.runner.types import RunnerArguments\n\nasync def bot(runner_args:\n    pass\n"


LOAD_FAILURES = [
        ("syntax_error", "SyntaxError: "),
        ("broken_missing_module", "ModuleNotFoundError: No module named 'voicefleet_test_module_that_does_not_exist' "
                                  "(add its package to your project (uv add …) and run bots with the project's "
                                  "Python: BOT_PYTHON=path/to/.venv/bin/python for a local dispatcher)"),
        ("broken_no_bot", "defines no `bot`"),
        ("broken_run_bot_room_token", "defines no `bot` (Pipecat's entry point: async def bot(runner_args)); it "
                                      "has `async def run_bot(room_url: str, token: str) -> None`: add `async def "
                                      "bot(runner_args): await run_bot(runner_args.room_url, runner_args.token)` "
                                      '(docs/from-pipecat-examples.md, "A bot whose entry point is main() or '
                                      'main(room_url, token)")'),
        ("broken_main_devices", "; it has `async def main(input_device: int, output_device: int) -> None`: move its "
                                "body into `async def bot(runner_args)`, taking the room and the bot's token from "
                                "runner_args.room_url"),
]


def broken_file(tmp_path: Path, name: str) -> Path:
    if name == "syntax_error":  # not kept in the tree: every linter would trip on it
        path = tmp_path / "bot.py"
        path.write_text(SYNTAX_ERROR)
        return path
    return BOTS / f"{name}.py"


@pytest.mark.parametrize(("name", "expected"), LOAD_FAILURES)
def test_a_bot_file_that_cannot_load_is_refused_naming_the_file_and_the_exception(
    tmp_path: Path, name: str, expected: str
) -> None:
    """What the host's loader (bot.user_bot.load_user_bot, in-process) tells each broken file; how the
    host ends on it is the same for all, checked once through a real process in the next test."""
    path = broken_file(tmp_path, name)
    with pytest.raises(BotFileError) as refused:
        load_user_bot(path)
    assert str(refused.value).startswith(f"{path}: ") and expected in str(refused.value), str(refused.value)


def test_a_bot_file_that_cannot_load_exits_4_naming_the_file_and_the_exception(spawn_bot: SpawnBot) -> None:
    path, expected = BOTS / "broken_missing_module.py", dict(LOAD_FAILURES)["broken_missing_module"]
    bot = spawn_user_bot(spawn_bot, path, wait_ready=False)
    assert bot.wait(60) == 4
    ended = bot.next_event("ended", 5)
    assert (ended["reason"], ended["exit_code"]) == ("bot_failed", 4)
    assert str(path) in ended["detail"] and expected in ended["detail"]
    assert not any(event["event"] == "ready" for event in bot.all_events)  # never offered as ready
    assert expected in bot.stderr_tail(50)


SESSION_FAILURES = [
        ("broken_raises", ":11: bot() raised BotConfigurationError: the test bot fails on purpose"),
        ("broken_returns", ": bot() returned before the session connected (it logged no warning or error)"),
        ("broken_returns_after_logging", ": bot() returned before the session connected, after logging: Phone "
                                         "number is required in dialout_settings."),
        ("broken_missing_key", ":9: bot() raised KeyError: 'VOICEFLEET_TEST_SERVICE_API_KEY' "
                               "(VOICEFLEET_TEST_SERVICE_API_KEY is not in the bot's environment: pass it with "
                               "LOCAL_BOT_ENV=VOICEFLEET_TEST_SERVICE_API_KEY to a local dispatcher, or set "
                               "botSecrets.VOICEFLEET_TEST_SERVICE_API_KEY on a stack)"),
        ("broken_reads_stdin", ":7: bot() raised EOFError: EOF when reading a line (input() asks the terminal, and a "
                               "bot has none (its stdin is closed): take the value from the client's POST /start "
                               "body (runner_args.body) or an environment variable)"),
        ("broken_krisp", ":11: bot() raised ImportError: krisp_audio is required for Krisp audio features. Install "
                         "it to use KrispVivaFilter, KrispVivaVadAnalyzer, KrispVivaTurn, or "
                         "KrispVivaIPUserTurnStartStrategy. (Krisp's SDK ships only in Pipecat Cloud's base image, "
                         "under its licence, not on PyPI: drop the Krisp filter from the bot, or set the switch your "
                         "bot skips it with (pipecat-examples' bots: ENV=local, passed with LOCAL_BOT_ENV=ENV "
                         "locally, botSecrets.ENV on a stack))"),
        ("daily_room_url", ":13: bot() raised AttributeError: 'SmallWebRTCRunnerArguments' object has no attribute "
                           "'room_url' (this session is not Daily's (SmallWebRTCRunnerArguments); a Daily-only bot "
                           "needs Daily sessions: TRANSPORTS=webrtc,daily (with DAILY_API_KEY) on the dispatcher and "
                           'POST /start {"transport": "daily"})'),
        ("main_room_token", ": main(room_url, token) joins a Daily room, and this session is SmallWebRTC's "
                            "(SmallWebRTCRunnerArguments); a Daily-only bot needs Daily sessions: TRANSPORTS=webrtc,"
                            'daily (with DAILY_API_KEY) on the dispatcher and POST /start {"transport": "daily"}'),
        ("main_reads_its_room", ": main() joins a Daily room, and this session is SmallWebRTC's "
                                "(SmallWebRTCRunnerArguments); a Daily-only bot needs Daily sessions: TRANSPORTS="
                                'webrtc,daily (with DAILY_API_KEY) on the dispatcher and POST /start {"transport": '
                                '"daily"}'),
        ("daily_only", ":13: bot() raised ValueError: Missing transport params for 'webrtc'. Please add 'webrtc' key "
                       "to your transport_params dict. (this session is SmallWebRTC's; a Daily-only bot needs Daily "
                       "sessions: TRANSPORTS=webrtc,daily (with DAILY_API_KEY) on the dispatcher and POST /start "
                       '{"transport": "daily"}, or add a \'webrtc\' entry)'),
]


async def session_of(path: Path) -> tuple[EndReason, str | None]:
    """The host's session of the file (bot.user_session.UserBotSession, in-process) given the
    SmallWebRTC runner arguments an offer makes, until it ends: its reason and detail."""
    connection = SmallWebRTCConnection()  # unanswered: these bots fail before they need a peer
    lifecycle, session_watch = SessionLifecycle(), watch.SessionWatch()
    session_watch.install()
    try:
        session = UserBotSession(load_user_bot(path), lifecycle, session_watch)
        session.start(webrtc_arguments(connection, body={}, session_id="s-broken", idle_timeout=60.0))
        reason = await asyncio.wait_for(lifecycle.wait(), 60)
        await session.stop()
    finally:
        watch._current = None  # this test process has other tests' workers to build, unwatched
        await connection.disconnect()
    return reason, lifecycle.detail


@pytest.mark.parametrize(("name", "expected"), SESSION_FAILURES)
async def test_a_bot_that_fails_in_its_session_ends_it_naming_the_file_and_the_exception(
    monkeypatch: pytest.MonkeyPatch, name: str, expected: str
) -> None:
    """What ends each broken bot's session and what it is told, decided in-process by the host's own
    session code; the process's exit 4 and `ended` line for such a session are the next test's, once."""
    monkeypatch.setattr(sys, "stdin", io.StringIO())  # as the host's: closed (python -m bot gets /dev/null)
    monkeypatch.delenv("VOICEFLEET_TEST_SERVICE_API_KEY", raising=False)
    monkeypatch.delenv("ENV", raising=False)
    reason, detail = await session_of(BOTS / f"{name}.py")
    assert (reason, detail) == (EndReason.BOT_FAILED, f"{BOTS / name}.py{expected}")  # with the line it raised at


async def test_a_bot_that_fails_in_its_session_ends_it_with_exit_4_naming_the_file_and_the_exception(
    spawn_bot: SpawnBot,
) -> None:
    name = "broken_raises"
    bot = spawn_user_bot(spawn_bot, name)
    client = WebRTCClient(bot.offer_url, connect_timeout=5)
    try:  # the offer makes the bot run its code; nothing is left to connect to once it has exited
        await connect_until(client, lambda: bot.proc.poll() is not None)
    except (TimeoutError, OSError):
        pass  # the bot may be gone before the peer connection is up
    finally:
        await client.close()
    assert bot.wait(30) == 4
    ended = bot.next_event("ended", 5)
    assert (ended["reason"], ended["exit_code"]) == ("bot_failed", 4)
    assert ended["detail"] == f"{BOTS / name}.py{dict(SESSION_FAILURES)[name]}"  # with the line it raised at


def test_the_optional_prewarm_hook_runs_before_ready_and_its_failure_is_the_files(
    spawn_bot: SpawnBot, tmp_path: Path
) -> None:
    marker = tmp_path / "prewarmed"
    good = tmp_path / "good" / "bot.py"
    good.parent.mkdir()
    good.write_text(
        (BOTS / "greeter.py").read_text().replace(
            "async def bot(", f"async def prewarm():\n    open({str(marker)!r}, 'w').close()\n\n\nasync def bot("
        )
    )
    spawn_user_bot(spawn_bot, good, PYTHONPATH=f"{REPO}:{BOTS}")
    assert marker.exists()  # `ready` came after it

    bad = tmp_path / "bad" / "bot.py"
    bad.parent.mkdir()
    bad.write_text("def prewarm():\n    raise OSError('model file missing')\n\n\nasync def bot(args):\n    pass\n")
    broken = spawn_user_bot(spawn_bot, bad, wait_ready=False)
    assert broken.wait(60) == 4
    assert broken.next_event("ended", 5)["detail"] == f"{bad}: prewarm() failed: OSError: model file missing"


def test_loading_puts_the_files_folder_first_so_its_own_modules_import(tmp_path: Path) -> None:
    (tmp_path / "helpers_for_user_bot_test.py").write_text("GREETING = 'hi'\n")
    path = tmp_path / "bot.py"
    path.write_text("from helpers_for_user_bot_test import GREETING\n\n\nasync def bot(runner_args):\n    pass\n")
    before = os.getcwd()
    loaded = load_user_bot(path)
    assert loaded.module.GREETING == "hi" and loaded.module.__name__ != "__main__"
    # The loader leaves the process's working directory alone (the bot host's own process moves to
    # the bot's folder): a test that loads a bot must not move every later subprocess's `-m`.
    assert os.getcwd() == before
    with pytest.raises(BotFileError, match="no such file"):
        load_user_bot(tmp_path / "missing.py")


async def test_the_session_watch_sees_every_worker_the_bot_builds_and_a_later_watch_takes_over() -> None:
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineWorker


    first, second = watch.SessionWatch(), watch.SessionWatch()
    try:
        first.install()
        worker = PipelineWorker(Pipeline([]))
        second.install()
        later = PipelineWorker(Pipeline([]))
    finally:
        watch._current = None  # this test process has other tests' workers to build, unwatched
    assert (first.workers, second.workers) == ([worker], [later])


def test_the_recipe_a_file_with_main_and_no_bot_is_pointed_at_is_a_section_of_that_page() -> None:
    from bot.no_bot_advice import RECIPE

    page, heading = RECIPE.split(", ", 1)
    headings = [line.lstrip("#").strip().replace("`", "") for line in (REPO / page).read_text().splitlines()
                if line.startswith("#")]
    assert heading.strip('"') in headings


async def test_a_bot_that_ends_its_own_pipeline_is_reported_closing_its_connection(spawn_bot: SpawnBot) -> None:
    """Its own close, not its peer's: an eval fails the turn it ended under, whether or not its caller saw
    the close arrive (docs/evals.md, "A bot's own end")."""
    bot = spawn_user_bot(spawn_bot, "hangs_up")
    async with WebRTCClient(bot.offer_url):
        assert bot.wait(HEARD_WITHIN) == 0  # it ended while its caller stayed on
    assert bot.next_event("ended", 5)["reason"] == "bot_closed"
