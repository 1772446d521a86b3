"""A carrier's side of a call that falls silent is ended: every carrier sends a media frame every
20 ms for as long as a call lasts (silence is still frames), so a stream that sends nothing for
PHONE_SILENCE_SECONDS after its handshake is not a call. Without this a stream that sent its two
handshake frames and then nothing held a session (and its slot) until its bot's own idle timeout,
and a reusable credential (Exotel's) could fill the deployment with such streams.

Only audio counts as heard: a carrier's `media` event (every carrier names its audio so), or a
binary frame. Any other frame (a `mark`, a `dtmf`) passes through but does not reset the bound,
so a stream that sends one small non-media frame every few seconds is still ended."""

from __future__ import annotations

import asyncio
from typing import Protocol

from starlette.types import Message

from botchannel.json_input import parse_json

CARRIER_SILENT = "carrier_silent"


class Socket(Protocol):
    async def receive(self) -> Message: ...

    async def send(self, message: Message) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


class SilenceBound:
    """`socket`, whose `receive` answers a disconnect after `seconds` without a frame (and says so:
    `fell_silent`); `None` seconds: no bound."""

    def __init__(self, socket: Socket, seconds: float | None) -> None:
        self._socket = socket
        self._seconds = seconds
        self._deadline: float | None = None  # loop time: moved on by audio only
        self.fell_silent = False

    async def receive(self) -> Message:
        if self._seconds is None:
            return await self._socket.receive()
        now = asyncio.get_running_loop().time()
        if self._deadline is None:
            self._deadline = now + self._seconds
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._socket.receive()
        except TimeoutError:
            self.fell_silent = True
            return {"type": "websocket.disconnect", "code": 1008}
        if is_audio(message):
            self._deadline = asyncio.get_running_loop().time() + self._seconds
        return message

    async def send(self, message: Message) -> None:
        await self._socket.send(message)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        await self._socket.close(code, reason)


def is_audio(message: Message) -> bool:
    """A binary frame, or a carrier's `media` event (Twilio, Telnyx, Plivo and Exotel all say so)."""
    if message.get("bytes") is not None:
        return True
    return is_carrier_event(message, "media")


def is_carrier_event(message: Message, event: str) -> bool:
    """A carrier's JSON frame of this `event` (`media`, `stop`)."""
    text = message.get("text")
    if not text or f'"{event}"' not in text:  # most frames are audio: parsed only when it may be
        return False
    try:
        frame = parse_json(text)
    except ValueError:
        return False
    return isinstance(frame, dict) and frame.get("event") == event
