"""The caller's frames held while a cold bot started are sent to it first, but the bot's audio is
relayed meanwhile: a bot that answers the held words at once is heard at once, not after the whole
backlog has gone (a busy replica sends 10 s of held frames slowly; the caller would hear the reply
late, and the call's recording, which lays it where the bot spoke, would disagree with what they heard)."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Message

from dispatcher.phone.relay import CallStats, pump_both, relay_call
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
