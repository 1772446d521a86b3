"""The Daily path, without reaching Daily: construction from URL + token, and failing to join."""

from __future__ import annotations

import signal
import time

import pytest

from bot.config import load_config
from bot.daily_mode import BOT_NAME, build_transport
from tests.bot.conftest import SpawnBot, bot_env, unshare_network_prefix
from tests.support.processes import wait_until_catching


def test_daily_transport_is_built_from_the_room_url_and_the_token_in_the_environment() -> None:
    config = load_config([], {"DAILY_ROOM_URL": "https://example.daily.co/abc", "DAILY_TOKEN": "bot-token"})
    transport = build_transport(config)
    client = transport._client  # the Daily client the transport joins with (no public accessor)
    assert (client._room_url, client._token, client._bot_name) == (
        "https://example.daily.co/abc",
        "bot-token",
        BOT_NAME,
    )


def test_daily_transport_flags_override_the_environment() -> None:
    config = load_config(
        ["--room-url", "https://example.daily.co/flag", "--token", "flag-token"],
        {"DAILY_ROOM_URL": "https://example.daily.co/env", "DAILY_TOKEN": "env-token"},
    )
    client = build_transport(config)._client
    assert (client._room_url, client._token) == ("https://example.daily.co/flag", "flag-token")


@pytest.mark.timeout(60)
def test_daily_bot_that_cannot_join_exits_3_and_never_logs_its_token(spawn_bot: SpawnBot) -> None:
    env = bot_env(DAILY_ROOM_URL="https://example.daily.co/nowhere", DAILY_TOKEN="secret-bot-token")
    bot = spawn_bot("--connect-timeout", "3", env=env, prefix=unshare_network_prefix())
    assert bot.wait(30) == 3
    ended = bot.next_event("ended", 5)
    assert ended["reason"] in ("join_failed", "connect_timeout")
    assert "secret-bot-token" not in bot.stderr_tail(10_000)


@pytest.mark.timeout(60)
def test_sigterm_while_the_daily_join_hangs_still_exits_0_within_seconds(spawn_bot: SpawnBot) -> None:
    env = bot_env(DAILY_ROOM_URL="https://example.daily.co/nowhere", DAILY_TOKEN="t")
    bot = spawn_bot("--connect-timeout", "60", env=env, prefix=unshare_network_prefix())
    wait_until_catching(bot.proc.pid, signal.SIGTERM)  # else, under load, SIGTERM beat its handler
    time.sleep(0.5)  # most likely in the join now, waiting on a network that does not exist
    started = time.monotonic()
    bot.proc.send_signal(signal.SIGTERM)
    assert bot.wait(15) == 0
    assert time.monotonic() - started < 6.0
    assert bot.next_event("ended", 1)["reason"] == "signal"
