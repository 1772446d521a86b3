"""The caller's frames held while a cold bot started are sent to it first, but the bot's audio is
relayed meanwhile: a bot that answers the held words at once is heard at once, not after the whole
backlog has gone (a busy replica sends 10 s of held frames slowly; the caller would hear the reply
late, and the call's recording, which lays it where the bot spoke, would disagree with what they heard)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from starlette.types import Message

from dispatcher.phone.relay import MAX_BUFFERED, CallStats, pump_both, relay_call
from tests.dispatcher.phone.test_relay_ends import DISCONNECT, Side

HELD = 200  # the caller's frames while the bot started: 4 s of 20 ms frames
SEND_SECONDS = 0.005  # each send to the bot: 1 s for the whole backlog
REPLY: Message = {"type": "websocket.receive", "text": '{"event": "media", "media": {"payload": "AA=="}}'}


def media(index: int) -> Message:
    return {"type": "websocket.receive", "text": f'{{"event": "media", "n": {index}}}'}


class SlowBot(Side):
    """A bot socket whose sends take a while (a busy replica, or the store hop), replying at once."""

    def __init__(self) -> None:
        super().__init__(REPLY)

    async def send(self, message: Message) -> None:
        await asyncio.sleep(SEND_SECONDS)
        await super().send(message)


class Carrier(Side):
    """The carrier: records how many frames the bot had been sent when the bot's reply reached it."""

    def __init__(self, bot: SlowBot, *frames: Message) -> None:
        super().__init__(*frames)
        self.bot = bot
        self.reply_after: int | None = None

    async def send(self, message: Message) -> None:
        if self.reply_after is None and message.get("text") == REPLY["text"]:
            self.reply_after = len(self.bot.sent)
        await super().send(message)


async def test_the_bots_reply_reaches_the_caller_while_the_held_frames_are_still_being_sent() -> None:
    bot = SlowBot()
    frames = [{"type": "websocket.receive", "text": '{"event": "connected"}'},
              {"type": "websocket.receive", "text": '{"event": "start"}'},
              *(media(i) for i in range(HELD))]
    carrier = Carrier(bot, *frames)
    attached = asyncio.Event()

    async def attach() -> Any:
        while carrier.frames.qsize():  # the whole backlog held before the bot is there
            await asyncio.sleep(0.01)
        attached.set()
        return bot

    async def end(reason: str) -> None:
        return None

    async def hang_up_later() -> None:
        await attached.wait()
        while len(bot.sent) < len(frames):
            await asyncio.sleep(0.01)
        carrier.frames.put_nowait(DISCONNECT)

    hanging_up = asyncio.create_task(hang_up_later())
    stats = await relay_call(carrier, attach, end, handshake_seconds=5)  # type: ignore[arg-type]
    await hanging_up
    assert [m["text"] for m in bot.sent] == [m["text"] for m in frames]  # every held frame, in order, once
    assert stats.carrier_frames == len(frames) and stats.bot_frames == 1
    assert carrier.reply_after is not None and carrier.reply_after < len(frames) // 2, (
        "the bot's reply waited for the held frames", carrier.reply_after, len(frames))


async def test_a_caller_hanging_up_while_the_held_frames_go_is_the_callers_end_with_its_time() -> None:
    """The caller hung up as its bot started, and the bot greets at once: the greeting fails on the closed
    socket, but the call ends as the caller's hang-up (told, with its time), not as a relay error."""
    held = [media(i) for i in range(HELD)]
    carrier = Side(DISCONNECT, gone=True)
    bot = SlowBot()
    told: list[str] = []
    assert await pump_both(carrier, bot, CallStats(), hung_up=told.append, held=held) == "carrier"
    assert told == ["closed"] and len(bot.sent) < HELD  # the rest of the held words reach no one


async def test_the_callers_frames_read_while_the_held_ones_go_follow_them_in_order() -> None:
    held = [media(i) for i in range(HELD)]
    live = [media(HELD + i) for i in range(20)]
    carrier = Side(*live)
    bot = SlowBot()
    stats = CallStats()
    pumping = asyncio.create_task(pump_both(carrier, bot, stats, held=held))
    while len(bot.sent) < HELD + len(live):
        await asyncio.sleep(0.01)
    carrier.frames.put_nowait(DISCONNECT)
    assert await pumping == "carrier"
    assert [m["text"] for m in bot.sent] == [m["text"] for m in held + live]
    assert stats.carrier_frames == HELD + len(live)


class HangingUpBot(Side):
    """A bot through the store hop (its sends never fail) that hangs up as the last held frame reaches it, a few
    turns of the loop before the relay is done with the backlog."""

    def __init__(self, turns: int) -> None:
        super().__init__()
        self.turns = turns

    async def send(self, message: Message) -> None:
        await super().send(message)
        if len(self.sent) == 1:
            self.frames.put_nowait(DISCONNECT)
            for _ in range(self.turns):
                await asyncio.sleep(0)


@pytest.mark.parametrize("turns", range(6))
async def test_the_call_ends_when_the_bot_hangs_up_as_the_held_frames_finish(turns: int) -> None:
    """However the bot's end and the backlog's end fall, the relay's cancel of the caller's side goes through:
    the call ends as the bot's, not when the caller next sends or hangs up."""
    ended = await asyncio.wait_for(pump_both(Side(), HangingUpBot(turns), CallStats(), held=[media(0)]), timeout=5)
    assert ended == "bot"


async def test_frames_read_while_the_held_ones_go_are_bounded() -> None:
    """A caller sending fast while its backlog goes out is read no further than the buffer's bound meanwhile."""
    carrier = Side(*(media(HELD + i) for i in range(3 * MAX_BUFFERED)))
    bot = SlowBot()
    pumping = asyncio.create_task(pump_both(carrier, bot, CallStats(), held=[media(i) for i in range(HELD)]))
    while len(bot.sent) < HELD // 2:
        await asyncio.sleep(0.01)
    assert carrier.frames.qsize() >= 3 * MAX_BUFFERED - MAX_BUFFERED  # the rest still waits in the socket
    carrier.frames.put_nowait(DISCONNECT)
    pumping.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pumping
