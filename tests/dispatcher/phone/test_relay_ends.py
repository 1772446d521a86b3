"""The relay between a carrier and its bot: how a call's end is named when both sides end in the
same instant, and which of the bot's frames count as its first audio."""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import pytest
from pipecat.frames.frames import OutputAudioRawFrame, OutputTransportMessageFrame
from pipecat.serializers.protobuf import ProtobufFrameSerializer
from starlette.types import Message
from starlette.websockets import WebSocketDisconnect

from dispatcher.phone import relay
from dispatcher.phone.relay import CallStats, pump_both

DISCONNECT: Message = {"type": "websocket.disconnect", "code": 1000}


class Side:
    """One end of the call in memory: frames it will deliver, in order, and whether it is gone
    (sending to a gone side fails as Starlette's socket does)."""

    def __init__(self, *frames: Message, gone: bool = False) -> None:
        self.frames: asyncio.Queue[Message] = asyncio.Queue()
        for frame in frames:
            self.frames.put_nowait(frame)
        self.gone = gone
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> Message:
        return await self.frames.get()

    async def send(self, message: Message) -> None:
        if self.gone:
            raise WebSocketDisconnect(1006)
        self.sent.append(dict(message))

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.gone = True


async def test_both_sides_ending_together_names_the_clean_end_and_leaves_no_unretrieved_exception() -> None:
    unretrieved: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: unretrieved.append(context))
    for _ in range(20):  # set order once decided which task was read: every run must agree
        carrier = Side({"type": "websocket.receive", "text": '{"event": "media"}'})
        bot = Side(DISCONNECT, gone=True)  # the bot hung up: its socket is gone as the carrier's frame goes to it
        assert await pump_both(carrier, bot, CallStats()) == "bot"
    gc.collect()
    await asyncio.sleep(0)
    assert unretrieved == []


async def test_a_carrier_hang_up_is_the_carriers_end() -> None:
    assert await pump_both(Side(DISCONNECT), Side(), CallStats()) == "carrier"


async def protobuf(frame: Any) -> Message:
    data = await ProtobufFrameSerializer().serialize(frame)
    assert isinstance(data, bytes)
    return {"type": "websocket.receive", "bytes": data}


async def test_first_bot_audio_waits_for_audio_not_an_rtvi_message() -> None:
    metrics = await protobuf(OutputTransportMessageFrame(message={"label": "rtvi-ai", "type": "metrics"}))
    audio = await protobuf(OutputAudioRawFrame(b"\x01\x00" * 160, 16000, 1))
    stats = CallStats()
    bot = Side(metrics)
    pumping = asyncio.create_task(pump_both(Side(), bot, stats))
    while not bot.frames.empty():
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.01)
    assert stats.bot_frames == 1 and stats.first_bot_frame is None  # relayed, but no audio yet
    bot.frames.put_nowait(audio)
    while stats.bot_frames < 2:
        await asyncio.sleep(0.01)
    assert stats.first_bot_frame is not None
    bot.frames.put_nowait(DISCONNECT)
    assert await pumping == "bot"


@pytest.mark.parametrize(("event", "audio"), [
    ({"event": "media", "streamSid": "MZ1", "media": {"payload": "AAAA"}}, True),  # Twilio, Telnyx, Exotel
    ({"event": "playAudio", "media": {"payload": "AAAA"}}, True),  # Plivo
    ({"event": "mark", "streamSid": "MZ1", "mark": {"name": "m"}}, False),
    ({"event": "clear", "streamSid": "MZ1"}, False),
])
def test_a_carriers_audio_event_is_audio_and_its_control_events_are_not(event: dict[str, Any], audio: bool) -> None:
    assert relay.is_audio({"type": "websocket.receive", "text": json.dumps(event)}) is audio
