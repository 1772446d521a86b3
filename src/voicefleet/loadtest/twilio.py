"""The load test's phone caller: a call in Twilio Media Streams' shape, as Twilio itself opens it
(docs/phone.md). `POST /start {"transport": "twilio"}` answers `{wsUrl, token, sessionId}`; the
caller opens `{wsUrl}/{token}`, says `connected` and `start`, then sends 20 ms of 8 kHz μ-law every
20 ms, as a live line does: silence, or the caller's speech while `turn()` plays it. Every `media`
message the bot sends back is decoded and timed, so the first loud one is the bot's first audio
and the first loud one after the caller's speech is the turn's reply.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from voicefleet.loadtest import mulaw
from voicefleet.loadtest.audio import SPEECH_RMS, Pcm, first_reply, loud_segments, reply_heard, resample, rms

LINE_RATE = 8000
FRAME_SAMPLES = 160  # 20 ms at 8 kHz
FRAME_SECONDS = 0.02
OPEN_TIMEOUT = 30.0  # the socket's upgrade, which starts the call's bot at the dispatcher
MAX_MESSAGE_BYTES = 2**20
KEY_SECONDS = 0.25  # between two keys a caller presses


def start_messages(call_sid: str, stream_sid: str, custom: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Twilio's first two messages on a stream: `connected`, then `start` with the call's ids."""
    return [
        {"event": "connected", "protocol": "Call", "version": "1.0.0"},
        {"event": "start", "sequenceNumber": "1", "streamSid": stream_sid, "start": {
            "accountSid": "AC" + "0" * 32, "streamSid": stream_sid, "callSid": call_sid, "tracks": ["inbound"],
            "customParameters": dict(custom or {}),
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}},
    ]  # fmt: skip


def dtmf_message(stream_sid: str, sequence: int, digit: str) -> dict[str, Any]:
    """One `dtmf` message: a key the caller pressed, as Twilio reports it (one message a key)."""
    return {"event": "dtmf", "streamSid": stream_sid, "sequenceNumber": str(sequence),
            "dtmf": {"track": "inbound_track", "digit": digit}}


def media_message(stream_sid: str, sequence: int, payload: bytes) -> dict[str, Any]:
    """One `media` message: 20 ms of the caller's μ-law audio."""
    frame = {"track": "inbound", "chunk": str(sequence), "timestamp": str(sequence * 20),
             "payload": base64.b64encode(payload).decode()}
    return {"event": "media", "sequenceNumber": str(sequence), "streamSid": stream_sid, "media": frame}


class TwilioCall:
    """One call on `url` (`{wsUrl}/{token}`); `headers` for an upgrade that carries its proof there."""

    def __init__(self, url: str, *, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.headers = headers or {}
        ids = uuid.uuid4().hex
        self.call_sid, self.stream_sid = f"CA{ids}", f"MZ{ids}"
        self.ws: ClientConnection | None = None
        self.connected_at: float | None = None
        self.times: list[float] = []  # monotonic arrival of each bot `media` message
        self.levels: list[float] = []
        self.last_speech_at: float | None = None  # monotonic time the caller's last loud frame went out
        self.keys_pressed: int = 0
        self._speech = np.zeros(0, dtype=np.int16)
        self._drained = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def connect(self) -> None:
        self.ws = await connect(self.url, additional_headers=self.headers, proxy=None, compression=None,
                                open_timeout=OPEN_TIMEOUT, max_size=MAX_MESSAGE_BYTES)
        for message in start_messages(self.call_sid, self.stream_sid):
            await self.ws.send(json.dumps(message))
        self.connected_at = time.monotonic()
        self._tasks += [asyncio.create_task(self._line()), asyncio.create_task(self._listen())]

    def first_frame_at(self) -> float | None:
        return self.times[0] if self.times else None

    def first_audio_at(self) -> float | None:
        segments = loud_segments(self.times, self.levels)
        return segments[0].start if segments else None

    async def turn(self, speech: Pcm, *, listen_seconds: float) -> float | None:
        """Says `speech` (any rate: sent at 8 kHz) and listens until a whole reply was heard (at most
        `listen_seconds`): the reply's latency from the end of the speech, or None without one."""
        self._speech = np.concatenate([self._speech, resample(speech, LINE_RATE).samples])
        self._drained.clear()
        try:
            await asyncio.wait_for(self._drained.wait(), speech.seconds + 5.0)
        except TimeoutError:  # the line stops sending once the stream is closed
            if self.ws is not None and self.ws.close_code is not None:
                raise ConnectionError(f"the call's stream closed mid-turn (code {self.ws.close_code})") from None
            raise
        deadline = time.monotonic() + listen_seconds
        while time.monotonic() < deadline:
            if reply_heard(self.times, self.levels, self.last_speech_at, time.monotonic()):
                break
            await asyncio.sleep(0.05)
        if self.last_speech_at is None:
            return None
        reply = first_reply(self.times, self.levels, self.last_speech_at)
        return None if reply is None else reply.start - self.last_speech_at

    async def press(self, digits: str, *, every: float = KEY_SECONDS) -> None:
        """Presses each key of `digits` (0-9, *, #) in turn, `every` seconds apart, as a person does."""
        assert self.ws is not None
        for index, digit in enumerate(digits):
            if index:
                await asyncio.sleep(every)
            self.keys_pressed += 1  # Pipecat's serializer reads the digit only; the number keeps the keys apart
            await self.ws.send(json.dumps(dtmf_message(self.stream_sid, self.keys_pressed, digit)))

    async def close(self) -> None:
        """Hangs up as Twilio does: `stop`, then the socket closes."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.ws is not None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await self.ws.send(json.dumps({"event": "stop", "streamSid": self.stream_sid,
                                               "stop": {"accountSid": "AC" + "0" * 32, "callSid": self.call_sid}}))
            await self.ws.close()

    async def _line(self) -> None:
        """20 ms every 20 ms, on time: the caller's speech while there is some, else silence."""
        assert self.ws is not None
        loop = asyncio.get_running_loop()
        began, sequence = loop.time(), 2
        with contextlib.suppress(ConnectionClosed):
            while True:
                block = np.zeros(FRAME_SAMPLES, dtype=np.int16)
                chunk = self._speech[:FRAME_SAMPLES]
                block[: len(chunk)] = chunk
                self._speech = self._speech[FRAME_SAMPLES:]
                await self.ws.send(json.dumps(media_message(self.stream_sid, sequence, mulaw.encode(block))))
                if rms(block) > SPEECH_RMS:
                    self.last_speech_at = time.monotonic()
                if len(self._speech) == 0:
                    self._drained.set()
                sequence += 1
                await asyncio.sleep(max(0.0, began + (sequence - 2) * FRAME_SECONDS - loop.time()))

    async def _listen(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                message = json.loads(raw)
                if message.get("event") == "media":
                    samples = mulaw.decode(base64.b64decode(message["media"]["payload"]))
                    self.times.append(time.monotonic())
                    self.levels.append(rms(samples))
