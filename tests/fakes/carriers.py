"""A carrier's side of a media stream: what Twilio, Telnyx, Plivo and Exotel send and expect.

Each speaks its carrier's documented WebSocket protocol (Twilio Media Streams; Telnyx media
streaming; Plivo audio streams; Exotel's Voicebot applet): the first messages (`connected`,
`start` with the call's ids and custom parameters; the `start` is message 1), the caller's audio
in `media` messages as long as the carrier's own (8 kHz μ-law, base64, 20 ms; Exotel: 16-bit PCM,
~100 ms), and the hang-up (`stop`, then the socket closes). It decodes the bot's
`media`/`playAudio` messages back to 16-bit PCM. Frame lengths are the load test's caller's
(src/voicefleet/loadtest/carrier_frames.py), so the two callers keep one account of each carrier.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from voicefleet.loadtest.carrier_frames import FRAMINGS

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

RATE = 8000
FRAME_SAMPLES = 160  # 20 ms at 8 kHz: the bot's frames, and the caller's on every carrier but Exotel


@dataclass
class CarrierCall:
    carrier: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    custom: Mapping[str, str] = field(default_factory=dict)
    call_id: str = "CA00000000000000000000000000000001"
    stream_id: str = "MZ00000000000000000000000000000001"
    ws: ClientConnection | None = None
    sequence: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    sent: list[tuple[float, bytes]] = field(default_factory=list)  # (time.monotonic() sent, 16-bit PCM): the caller
    heard: list[tuple[float, bytes]] = field(default_factory=list)  # (time.monotonic() received, 16-bit PCM): the bot
    speech: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    line: asyncio.Task[None] | None = None

    @property
    def frame_seconds(self) -> float:
        """The audio in each of the caller's `media` messages, as the carrier sends it."""
        return FRAMINGS[self.carrier].frame_seconds

    @property
    def frame_bytes(self) -> int:
        return 2 * round(self.frame_seconds * RATE)

    async def open(self) -> None:
        self.ws = await connect(self.url, additional_headers=dict(self.headers), proxy=None, open_timeout=10)

    async def handshake(self, *, stream: bool = True) -> None:
        """The first messages, then (as a real line does) a frame of audio every frame's length
        (20 ms; Exotel's 100 ms): silence unless the caller is speaking (`say`)."""
        for message in self._first_messages():
            await self._send(message)
        if stream:
            self.line = asyncio.create_task(self._stream())

    async def say(self, pcm16: bytes) -> None:
        """The caller speaks: queued onto the line, a frame per message; returns once it is sent.
        A line that closes first ends the wait with the close, instead of leaving it waiting forever
        on frames nothing will send."""
        if self.line is None:
            raise RuntimeError("no line to speak on: handshake(stream=True) starts it")
        step = self.frame_bytes
        for offset in range(0, len(pcm16) - step + 1, step):
            self.speech.put_nowait(pcm16[offset : offset + step])
        sent = asyncio.ensure_future(self.speech.join())
        await asyncio.wait({sent, self.line}, return_when=asyncio.FIRST_COMPLETED)
        if not sent.done():
            sent.cancel()
            closed = self.ws.close_code if self.ws is not None else None
            raise ConnectionError(f"the line closed (code {closed}) with {self.speech.qsize()} frame(s) unsent")

    async def send_frame(self, pcm16: bytes, chunk: int) -> None:
        payload = pcm16 if self.carrier == "exotel" else audioop.lin2ulaw(pcm16, 2)
        await self._send(self._media(base64.b64encode(payload).decode(), chunk))
        self.sent.append((time.monotonic(), pcm16))

    async def _stream(self) -> None:
        loop = asyncio.get_running_loop()
        began, chunk = loop.time(), 0
        silence = bytes(self.frame_bytes)
        with contextlib.suppress(ConnectionClosed):
            while True:
                frame = self.speech.get_nowait() if not self.speech.empty() else None
                await self.send_frame(frame if frame is not None else silence, chunk)
                if frame is not None:
                    self.speech.task_done()
                chunk += 1
                await asyncio.sleep(max(0.0, began + chunk * self.frame_seconds - loop.time()))

    async def next_bot_audio(self, timeout: float) -> bytes:
        """The next audio the bot sent, as 16-bit PCM (skips marks, clears and the like)."""
        assert self.ws is not None
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            self.received.append(message)
            payload = _bot_payload(self.carrier, message)
            if payload is not None:
                raw = base64.b64decode(payload)
                pcm = raw if self.carrier == "exotel" else audioop.ulaw2lin(raw, 2)
                self.heard.append((time.monotonic(), pcm))
                return pcm

    async def bot_audio(self, seconds: float, timeout: float) -> bytes:
        """At least `seconds` of the bot's audio."""
        audio = b""
        while len(audio) < seconds * RATE * 2:
            audio += await self.next_bot_audio(timeout)
        return audio

    async def hang_up(self) -> None:
        assert self.ws is not None
        await self._quiet()
        stop = self._stop()
        if stop is not None:
            await self._send(stop)
        await self.ws.close()

    async def wait_closed_by_bot(self, timeout: float) -> int | None:
        """Reads (and keeps) what the bot still sends until the dispatcher closes the stream."""
        assert self.ws is not None
        try:
            while True:
                self.received.append(json.loads(await asyncio.wait_for(self.ws.recv(), timeout)))
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
        finally:
            await self._quiet()

    async def _quiet(self) -> None:
        if self.line is not None:
            self.line.cancel()
            with contextlib.suppress(BaseException):
                await self.line

    async def _send(self, message: Mapping[str, Any]) -> None:
        assert self.ws is not None
        if "sequenceNumber" in message or "sequence_number" in message:  # `connected` is not numbered
            self.sequence += 1
        await self.ws.send(json.dumps(message))

    def _first_messages(self) -> list[dict[str, Any]]:
        seq = str(self.sequence + 1)
        if self.carrier == "twilio":
            return [
                {"event": "connected", "protocol": "Call", "version": "1.0.0"},
                {
                    "event": "start", "sequenceNumber": "1", "streamSid": self.stream_id,
                    "start": {
                        "accountSid": "AC00000000000000000000000000000001", "streamSid": self.stream_id,
                        "callSid": self.call_id, "tracks": ["inbound"], "customParameters": dict(self.custom),
                        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                    },
                },
            ]  # fmt: skip
        if self.carrier == "telnyx":
            return [
                {"event": "connected", "version": "1.0.0"},
                {
                    "event": "start", "sequence_number": "1", "stream_id": self.stream_id,
                    "start": {
                        "user_id": "u-1", "call_control_id": self.call_id, "call_session_id": "s-1",
                        "from": "+14155550100", "to": "+14155550199", "client_state": "",
                        "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
                    },
                },
            ]  # fmt: skip
        if self.carrier == "plivo":  # Plivo's stream opens with `start` (no `connected`)
            return [
                {
                    "event": "start", "sequenceNumber": 1,
                    "start": {
                        "callId": self.call_id, "streamId": self.stream_id, "accountId": "MA0001",
                        "tracks": ["inbound"], "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
                    },
                    "extra_headers": json.dumps(dict(self.custom)),
                },
            ]  # fmt: skip
        return [  # exotel
            {"event": "connected"},
            {
                "event": "start", "sequence_number": seq, "stream_sid": self.stream_id,
                "start": {
                    "stream_sid": self.stream_id, "call_sid": self.call_id, "account_sid": "exotel-acct",
                    "from": "+919876543210", "to": "+918047491899", "custom_parameters": dict(self.custom),
                    "media_format": {"encoding": "audio/x-raw", "sample_rate": "8000", "bit_rate": "16"},
                },
            },
        ]  # fmt: skip

    def _media(self, payload: str, chunk: int) -> dict[str, Any]:
        timestamp = FRAMINGS[self.carrier].elapsed_ms(chunk + 1)
        if self.carrier == "twilio":
            return {"event": "media", "sequenceNumber": str(self.sequence + 1), "streamSid": self.stream_id,
                    "media": {"track": "inbound", "chunk": str(chunk + 1), "timestamp": timestamp, "payload": payload}}
        if self.carrier == "telnyx":
            return {"event": "media", "sequence_number": str(self.sequence + 1), "stream_id": self.stream_id,
                    "media": {"track": "inbound", "chunk": str(chunk + 1), "timestamp": timestamp, "payload": payload}}
        if self.carrier == "plivo":
            return {"event": "media", "sequenceNumber": self.sequence + 1, "streamId": self.stream_id,
                    "media": {"track": "inbound", "timestamp": timestamp, "chunk": chunk + 1, "payload": payload}}
        return {"event": "media", "sequence_number": str(self.sequence + 1), "stream_sid": self.stream_id,
                "media": {"chunk": str(chunk + 1), "timestamp": timestamp, "payload": payload}}  # fmt: skip

    def _stop(self) -> dict[str, Any] | None:
        if self.carrier == "twilio":
            return {"event": "stop", "sequenceNumber": str(self.sequence + 1), "streamSid": self.stream_id,
                    "stop": {"accountSid": "AC00000000000000000000000000000001", "callSid": self.call_id}}
        if self.carrier == "telnyx":
            return {"event": "stop", "sequence_number": str(self.sequence + 1), "stream_id": self.stream_id,
                    "stop": {"user_id": "u-1", "call_control_id": self.call_id}}
        if self.carrier == "exotel":
            return {"event": "stop", "sequence_number": str(self.sequence + 1), "stream_sid": self.stream_id,
                    "stop": {"call_sid": self.call_id, "account_sid": "exotel-acct", "reason": "callended"}}
        return None  # Plivo ends the stream by closing it


def _bot_payload(carrier: str, message: Mapping[str, Any]) -> str | None:
    event = message.get("event")
    if carrier == "plivo":
        return message.get("media", {}).get("payload") if event == "playAudio" else None
    return message.get("media", {}).get("payload") if event == "media" else None
