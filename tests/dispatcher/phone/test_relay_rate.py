"""Each side of a call is bounded in frames a second: a token bucket, and the side past it closed
with 1008 and a reason, the call ending as that side's (dispatcher/phone/relay.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Message

from dispatcher.phone.relay import (
    BOT_OVER_RATE,
    CARRIER_OVER_RATE,
    CallStats,
    FrameRate,
    FrameRates,
    pump_both,
    relay_call,
)
from tests.dispatcher.phone.test_relay_ends import DISCONNECT, Side

FRAME: Message = {"type": "websocket.receive", "text": '{"event": "media"}'}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_takes_its_burst_at_once_then_its_rate() -> None:
    clock = Clock()
    rate = FrameRate(250, clock=clock)
    assert all(rate.take() for _ in range(250))  # a second's worth at once: a carrier catching up after a stall
    assert not rate.take()
    clock.now += 0.1
    assert sum(rate.take() for _ in range(100)) == 25
    clock.now += 100  # idle: refilled to its burst, no more
    assert sum(rate.take() for _ in range(1000)) == 250


def test_a_carriers_cadence_never_reaches_the_bound() -> None:
    clock = Clock()
    rate = FrameRate(250, clock=clock)
    for _ in range(30_000):  # ten minutes of 20 ms frames, and Pipecat's smallest chunk at 200 a second
        clock.now += 0.005
        assert rate.take()


class Flood(Side):
    """A side that sends `count` frames as fast as it is read, then waits."""

    def __init__(self, count: int) -> None:
        super().__init__(*[FRAME] * count)
        self.closed: tuple[int, str | None] | None = None

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed = (code, reason)
        await super().close(code, reason)


async def test_a_flooding_carrier_ends_the_pump_as_over_its_rate() -> None:
    stats = CallStats()
    bot = Side()
    assert await pump_both(Flood(1000), bot, stats, FrameRates(250)) == CARRIER_OVER_RATE
    assert stats.carrier_frames == 250 and len(bot.sent) == 250  # the burst was relayed, the rest was not
    assert stats.over_rate_at is not None


async def test_a_flooding_bot_ends_the_pump_as_over_its_rate() -> None:
    assert await pump_both(Side(), Flood(1000), CallStats(), FrameRates(250)) == BOT_OVER_RATE


async def test_a_bot_closed_for_its_rate_at_another_replica_is_named_so_here() -> None:
    bot = Side({**DISCONNECT, "reason": BOT_OVER_RATE})  # the store hop's end, as the other replica finished it
    stats = CallStats()
    assert await pump_both(Side(), bot, stats) == BOT_OVER_RATE
    assert stats.over_rate_at is None  # closed and logged there, not here


async def run_call(carrier: Flood, bot: Flood | Side, attach_delay: float = 0) -> tuple[CallStats, list[str]]:
    ended: list[str] = []

    async def attach() -> Any:
        await asyncio.sleep(attach_delay)
        return bot

    async def end(reason: str) -> None:
        ended.append(reason)

    stats = await relay_call(carrier, attach, end, max_frames_per_second=100)  # type: ignore[arg-type]
    return stats, ended


async def test_the_flooding_side_is_closed_with_1008_and_the_other_as_a_call_end() -> None:
    carrier, bot = Flood(500), Flood(0)
    stats, ended = await run_call(carrier, bot)
    assert stats.ended_by == CARRIER_OVER_RATE and ended == [CARRIER_OVER_RATE]
    assert carrier.closed == (1008, "the caller sent more than 100 frames a second")
    assert bot.closed == (1000, "call ended")


async def test_a_caller_flooding_while_its_bot_starts_is_closed_before_the_bot() -> None:
    carrier = Flood(500)
    stats, ended = await run_call(carrier, Side(), attach_delay=5)
    assert stats.ended_by == CARRIER_OVER_RATE and ended == [CARRIER_OVER_RATE]
    assert carrier.closed == (1008, "the caller sent more than 100 frames a second")


async def test_a_flooding_bot_is_closed_with_1008_and_the_caller_told_the_call_ended() -> None:
    carrier, bot = Flood(0), Flood(500)
    stats, ended = await run_call(carrier, bot)
    assert stats.ended_by == BOT_OVER_RATE and ended == [BOT_OVER_RATE]
    assert bot.closed == (1008, "the bot sent more than 100 frames a second")
    assert carrier.closed == (1000, "call ended")
