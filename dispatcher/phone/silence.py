"""A carrier's side of a call that falls silent is ended: every carrier sends a media frame every
20 ms for as long as a call lasts (silence is still frames), so a stream that sends nothing for
PHONE_SILENCE_SECONDS after its handshake is not a call. Without this a stream that sent its two
handshake frames and then nothing held a session (and its slot) until its bot's own idle timeout,
and a reusable credential (Exotel's) could fill the deployment with such streams."""

from __future__ import annotations

import asyncio
from typing import Protocol

from starlette.types import Message

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
        self.fell_silent = False

    async def receive(self) -> Message:
        if self._seconds is None:
            return await self._socket.receive()
        try:
            async with asyncio.timeout(self._seconds):
                return await self._socket.receive()
        except TimeoutError:
            self.fell_silent = True
            return {"type": "websocket.disconnect", "code": 1008}

    async def send(self, message: Message) -> None:
        await self._socket.send(message)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        await self._socket.close(code, reason)
