"""Each side of a call is bounded in frames a second: a token bucket, and the side past it closed
with 1008 and a reason, the call ending as that side's (dispatcher/phone/relay.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.types import Message

from dispatcher.phone.relay import (
    BOT_OVER_RATE,
    BOT_UNREACHABLE,
    CARRIER_OVER_RATE,
    CARRIER_UNREACHABLE,
    MAX_BYTES_PER_SECOND,
    CallStats,
    FrameRate,
    FrameRates,
    frame_size,
    pump_both,
    relay_call,
)
from dispatcher.store.media_bus import LINE_LOST
from tests.dispatcher.phone.test_relay_ends import DISCONNECT, Side

FRAME: Message = {"type": "websocket.receive", "text": '{"event": "media"}'}


class HopSide(Side):
    """The store hop to the other side's replica, where that side's frames were counted already."""

    rated_at_its_replica = True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_takes_its_burst_at_once_then_its_rate() -> None:
    clock = Clock()
    rate = FrameRate(250, clock=clock)
    assert all(rate.take() for _ in range(1250))  # five seconds' worth at once: a carrier catching up after a stall
    assert not rate.take()
    clock.now += 0.1
    assert sum(rate.take() for _ in range(100)) == 25
    clock.now += 100  # idle: refilled to its burst, no more
    assert sum(rate.take() for _ in range(10_000)) == 1250


def test_pipecats_smallest_chunks_after_a_six_second_stall_pass() -> None:
    clock = Clock()
    rate = FrameRate(250, clock=clock)
    clock.now += 6.0
    assert all(rate.take(320) for _ in range(1200))  # 10 ms of 16 kHz audio, 200 a second, held up 6 s


def test_big_frames_are_bounded_by_their_bytes_too() -> None:
    clock = Clock()
    rate = FrameRate(250, clock=clock)
    big = 256 * 1024  # the WebSocket's frame limit: 64 MiB a second at 250 frames
    assert sum(rate.take(big) for _ in range(100)) == MAX_BYTES_PER_SECOND // big  # one second's at once
    clock.now += 1.0
    assert sum(rate.take(big) for _ in range(100)) == MAX_BYTES_PER_SECOND // big


def test_a_text_frame_is_counted_in_its_utf8_bytes() -> None:
    assert frame_size({"type": "websocket.receive", "text": "𝄞" * 1000}) == 4000
    assert frame_size({"type": "websocket.receive", "bytes": b"x" * 1000}) == 1000


def test_frames_read_through_the_store_are_not_counted_again() -> None:
    """They were counted where they were read from their socket: a cold start's buffered backlog,
    sent at once through the store, is no flood at the bot's replica."""
    class Hop(Side):
        rated_at_its_replica = True

    rates = FrameRates(100).not_here(Hop(), Side())
    assert all(rates.carrier.take(1000) for _ in range(100_000))
    assert sum(rates.bot.take() for _ in range(1000)) == 500


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
    rates, frozen = FrameRates(250), Clock()  # the flood comes at one instant: no refill, however slow the machine
    rates.carrier, rates.bot = FrameRate(250, clock=frozen), FrameRate(250, clock=frozen)
    assert await pump_both(Flood(2000), bot, stats, rates) == CARRIER_OVER_RATE
    assert stats.carrier_frames == 1250 and len(bot.sent) == 1250  # the burst was relayed, the rest was not
    assert stats.over_rate_at is not None


async def test_a_flooding_bot_ends_the_pump_as_over_its_rate() -> None:
    assert await pump_both(Side(), Flood(2000), CallStats(), FrameRates(250)) == BOT_OVER_RATE


@pytest.mark.parametrize("lost", sorted(LINE_LOST))
async def test_a_side_whose_replica_could_not_be_reached_is_not_named_as_hanging_up(lost: str) -> None:
    gone = {**DISCONNECT, "reason": lost}  # the store hop's end: the store or the other replica gone quiet
    assert await pump_both(Side(), HopSide(gone), CallStats()) == BOT_UNREACHABLE
    assert await pump_both(HopSide(gone), Side(), CallStats()) == CARRIER_UNREACHABLE


async def test_a_side_that_hung_up_at_another_replica_or_here_is_named_so() -> None:
    assert await pump_both(Side(), HopSide({**DISCONNECT, "reason": "bot_hung_up"}), CallStats()) == "bot"
    # A socket's own close reason is its client's words: a bot or caller saying "store_unavailable" hung up.
    assert await pump_both(Side(), Side({**DISCONNECT, "reason": "store_unavailable"}), CallStats()) == "bot"
    assert await pump_both(Side({**DISCONNECT, "reason": "peer_silent"}), Side(), CallStats()) == "carrier"


async def test_a_bot_closed_for_its_rate_at_another_replica_is_named_so_here() -> None:
    bot = HopSide({**DISCONNECT, "reason": BOT_OVER_RATE})  # the store hop's end, as the other replica finished it
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
    carrier, bot = Flood(1000), Flood(0)
    stats, ended = await run_call(carrier, bot)
    assert stats.ended_by == CARRIER_OVER_RATE and ended == [CARRIER_OVER_RATE]
    assert carrier.closed == (1008, "the caller sent more than 100 frames or 1 MiB a second")
    assert bot.closed == (1000, "call ended")


async def test_a_caller_flooding_while_its_bot_starts_is_closed_before_the_bot() -> None:
    carrier = Flood(1000)
    stats, ended = await run_call(carrier, Side(), attach_delay=5)
    assert stats.ended_by == CARRIER_OVER_RATE and ended == [CARRIER_OVER_RATE]
    assert carrier.closed == (1008, "the caller sent more than 100 frames or 1 MiB a second")


async def test_a_flooding_bot_is_closed_with_1008_and_the_caller_told_the_call_ended() -> None:
    carrier, bot = Flood(0), Flood(1000)
    stats, ended = await run_call(carrier, bot)
    assert stats.ended_by == BOT_OVER_RATE and ended == [BOT_OVER_RATE]
    assert bot.closed == (1008, "the bot sent more than 100 frames or 1 MiB a second")
    assert carrier.closed == (1000, "call ended")


async def test_a_bot_at_another_replica_is_not_counted_again_at_the_callers() -> None:
    bot = HopSide(*[FRAME] * 2000, DISCONNECT)  # far past 100 a second, all at once: counted there, not here
    stats, ended = await run_call(Flood(0), bot)
    assert stats.ended_by == "bot" and ended == ["bot_hung_up"] and stats.bot_frames == 2000


async def test_the_callers_backlog_reaching_the_bots_replica_at_once_is_not_a_flood_there() -> None:
    """At the bot's replica the caller's side is the store hop: the frames buffered while the bot
    started (up to 500) arrive together and were counted where the caller's socket was read."""
    carrier = HopSide(*[FRAME] * 2000, DISCONNECT)
    assert await pump_both(carrier, Side(), CallStats(), FrameRates(100).not_here(carrier, Side())) == "carrier"


async def test_the_handshake_frames_count_against_the_callers_bytes() -> None:
    """A carrier's first two frames are read before the bot is asked for: they are frames like any
    other, and two that are over a second's bytes end the call before any session starts."""
    most = {"type": "websocket.receive", "bytes": b"x" * (MAX_BYTES_PER_SECOND * 6 // 10)}
    carrier = Flood(0)
    carrier.frames.put_nowait(most)
    carrier.frames.put_nowait(most)
    attached: list[bool] = []
    ended: list[str] = []

    async def attach() -> Any:
        attached.append(True)
        return Side(DISCONNECT)

    async def end(reason: str) -> None:
        ended.append(reason)

    stats = await relay_call(carrier, attach, end, handshake_seconds=5)  # type: ignore[arg-type]
    assert stats.ended_by == CARRIER_OVER_RATE and attached == [] and ended == []  # no session was started
    assert carrier.closed is not None and carrier.closed[0] == 1008
