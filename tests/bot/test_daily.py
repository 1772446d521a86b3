"""The Daily path, without reaching Daily: runner arguments from URL + token, and failing to join."""

from __future__ import annotations

import signal
import time

from pipecat.runner.types import DailyRunnerArguments
from pipecat.runner.utils import create_transport
from pipecat.transports.daily.transport import DailyParams

from bot.config import load_config
from bot.runner_args import daily_arguments
from tests.bot.conftest import REPO, SpawnBot, bot_env, unshare_network_prefix
from tests.support.processes import wait_until_catching


async def test_the_bot_gets_daily_runner_arguments_from_the_room_url_and_token_as_pipecats_runner_builds_them() -> None:
    config = load_config(["--session-id", "s-daily"], {"DAILY_ROOM_URL": "https://example.daily.co/abc",
                         "DAILY_TOKEN": "bot-token", "VOICEFLEET_BODY": '{"lang": "fr"}'})  # fmt: skip
    assert config.room_url is not None
    args = daily_arguments(config.room_url, config.token, body=config.body, session_id=config.session_id,
                           idle_timeout=config.idle_timeout)  # fmt: skip
    assert isinstance(args, DailyRunnerArguments)
    assert (args.room_url, args.token, args.body, args.session_id) == (
        "https://example.daily.co/abc", "bot-token", {"lang": "fr"}, "s-daily")  # fmt: skip
    # What Pipecat's runner leaves them at: the host owns the signals; the idle timeout is configured.
    assert (args.handle_sigint, args.handle_sigterm, args.pipeline_idle_timeout_secs) == (False, False, 300.0)
    transport = await create_transport(args, {"daily": lambda: DailyParams(audio_in_enabled=True)})
    client = transport._client  # the Daily client the transport joins with (no public accessor)
    assert (client._room_url, client._token) == ("https://example.daily.co/abc", "bot-token")


def test_daily_bot_that_cannot_join_exits_3_and_never_logs_its_token(spawn_bot: SpawnBot) -> None:
    env = bot_env(DAILY_ROOM_URL="https://example.daily.co/nowhere", DAILY_TOKEN="secret-bot-token")
    bot = spawn_bot("--connect-timeout", "3", env=env, prefix=unshare_network_prefix())
    assert bot.wait(30) == 3
    ended = bot.next_event("ended", 5)
    assert ended["reason"] in ("join_failed", "connect_timeout")
    assert "secret-bot-token" not in bot.stderr_tail(10_000)


def test_sigterm_while_the_daily_join_hangs_still_exits_0_within_seconds(spawn_bot: SpawnBot) -> None:
    env = bot_env(DAILY_ROOM_URL="https://example.daily.co/nowhere", DAILY_TOKEN="t")
    bot = spawn_bot("--connect-timeout", "60", env=env, prefix=unshare_network_prefix())
    wait_until_catching(bot.proc.pid, signal.SIGTERM)  # else, under load, SIGTERM beat its handler
    time.sleep(0.5)  # most likely in the join now, waiting on a network that does not exist
    bot.proc.send_signal(signal.SIGTERM)
    assert bot.wait(15) == 0  # not its exit deadline's SIGALRM: the hanging join did not hold it
    assert bot.next_event("ended", 1)["reason"] == "signal"


def test_a_daily_bot_that_reads_its_room_from_the_body_fails_its_session_at_once_saying_where_the_room_is(
    spawn_bot: SpawnBot,
) -> None:
    """pipecat-examples' ivr-navigation builds its DailyTransport from `runner_args.body`, where the
    client sent no room: the transport's set-up fails, and the session ends failed within seconds (not
    at the join deadline), its detail naming the file and where the room is."""
    bot_file = REPO / "tests" / "bots" / "daily_room_from_body.py"
    env = bot_env(BOT_FILE=str(bot_file), DAILY_ROOM_URL="https://example.daily.co/room", DAILY_TOKEN="t",
                  VOICEFLEET_BODY='{"dialout_settings": {"phone_number": "+15555550100"}}')  # fmt: skip
    bot = spawn_bot("--connect-timeout", "120", env=env)
    began = time.monotonic()
    assert bot.wait(30) == 4
    ended = bot.next_event("ended", 5)
    assert time.monotonic() - began < 15  # a deadline for a loaded machine: the join deadline was 120 s
    assert (ended["reason"], ended["exit_code"]) == ("bot_failed", 4)
    assert ended["detail"].startswith(f"{bot_file}: DailyInputTransport#0: the Daily transport was given no room")
    assert "runner_args.room_url" in ended["detail"] and "runner_args.token" in ended["detail"]
