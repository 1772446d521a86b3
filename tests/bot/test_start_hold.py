"""The user's `bot()` runs in the loop that answers the caller's ICE checks: the CPU its first step
takes after the answer is measured (bot/start_hold.py), a slow one is named in the log, and the
booking example starts a call without holding the connect.

Real processes: `python -m bot` with the bot file, a real aiortc caller through HTTP signalling.
The figure checked is the bot's CPU time, not wall time, so a busy machine cannot fail it: the
booking line's first step takes a few milliseconds, and took 0.4-0.8 s when it imported the OpenAI
SDK per call.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.bot.conftest import REPO, BotProcess, SpawnBot, bot_env
from tests.support.waiting import wait_until
from tests.support.webrtc_client import WebRTCClient

SLOW_START = REPO / "tests" / "bots" / "slow_start.py"
BOOKING = REPO / "examples" / "booking" / "bot.py"
CONNECTED_TIMEOUT = 60.0


def held_warnings(bot: BotProcess) -> list[str]:
    return [line for line in bot.stderr_lines if "before its first await" in line]


async def one_call(spawn_bot: SpawnBot, bot_file: Path) -> BotProcess:
    """A call connected and hung up; the bot's log read to its end of session, which it writes after any
    warning about the start (one pipe, in order)."""
    bot = spawn_bot("--port", "0", env=bot_env(BOT_FILE=str(bot_file)))
    async with WebRTCClient(bot.offer_url):
        await asyncio.to_thread(bot.next_event, "connected", CONNECTED_TIMEOUT)
    ending = await asyncio.to_thread(
        wait_until,
        lambda: any("session ending" in line for line in bot.stderr_lines),
        "the session's end in its log",
        timeout=CONNECTED_TIMEOUT,
    )
    assert ending
    return bot


@pytest.mark.slow
async def test_a_bot_that_computes_before_its_first_await_is_named_with_the_cpu_it_held(spawn_bot: SpawnBot) -> None:
    bot = await one_call(spawn_bot, SLOW_START)
    (warning,) = held_warnings(bot)
    assert str(SLOW_START) in warning and "prewarm()" in warning
    held = float(warning.split("bot() ran ", 1)[1].split(" s of CPU", 1)[0])
    assert held >= 0.4


@pytest.mark.slow
async def test_the_booking_line_starts_a_call_without_holding_the_connect(spawn_bot: SpawnBot) -> None:
    bot = await one_call(spawn_bot, BOOKING)
    assert not held_warnings(bot), held_warnings(bot)
