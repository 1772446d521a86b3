"""Vonage's side of a WebSocket call (Voice API `connect` to a `websocket` endpoint, or the Video
API's Audio Connector): it dials the `uri` the NCCO names, sends `websocket:connected` (a JSON text
message with the audio's content type and the NCCO's headers), then 20 ms of 16-bit linear PCM at
16 kHz per binary message (640 bytes); the bot's audio comes back the same way, binary."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

RATE = 16000
FRAME_BYTES = RATE // 50 * 2  # 20 ms of 16-bit mono


@dataclass
class VonageCall:
    uri: str
    headers: Mapping[str, str] = field(default_factory=dict)  # the NCCO endpoint's `headers`, echoed on connect
    ws: ClientConnection | None = None
    line: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.ws = await connect(self.uri, proxy=None, open_timeout=10)
        await self.ws.send(json.dumps({"event": "websocket:connected", "content-type": f"audio/l16;rate={RATE}",
                                       **self.headers}))
        self.line = asyncio.create_task(self._silence())

    async def _silence(self) -> None:
        assert self.ws is not None
        loop = asyncio.get_running_loop()
        began, sent = loop.time(), 0
        with contextlib.suppress(ConnectionClosed):
            while True:
                await self.ws.send(bytes(FRAME_BYTES))
                sent += 1
                await asyncio.sleep(max(0.0, began + sent * 0.02 - loop.time()))

    async def bot_audio(self, timeout: float) -> bytes:
        """The next binary message the bot sent (its audio); text messages are skipped."""
        assert self.ws is not None
        while True:
            message = await asyncio.wait_for(self.ws.recv(), timeout)
            if isinstance(message, bytes):
                return message

    async def hang_up(self) -> None:
        if self.line is not None:
            self.line.cancel()
            with contextlib.suppress(BaseException):
                await self.line
        if self.ws is not None:
            await self.ws.close()
