"""The phone caller of the load test and the evals: a call as its carrier opens it (docs/phone.md),
in the carrier's own messages (carrier_frames.py). `POST /start {"transport": "<carrier>"}` answers
`{wsUrl, token, sessionId}`; the caller opens `{wsUrl}/{token}` (the token in the path, as a stream
URL the carrier dials carries it), sends the carrier's first messages, then a frame of 8 kHz audio
every frame's length, as a live line does: silence, or the caller's speech while `turn()` plays it.
Every frame of the bot's audio is decoded and timed, so the first loud one is the bot's first audio
and the first loud one after the caller's speech is the turn's reply. A SIP call (sip_line.py) is
the same line over another `Line`: the process that places the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from voicefleet.loadtest.audio import SPEECH_RMS, Pcm, first_reply, loud_segments, reply_heard, resample, rms
from voicefleet.loadtest.carrier_frames import Framing
from voicefleet.loadtest.lag import LagTrace

LINE_RATE = 8000
OPEN_TIMEOUT = 30.0  # the socket's upgrade, which starts the call's bot at the dispatcher
MAX_MESSAGE_BYTES = 2**20
KEY_SECONDS = 0.25  # between two keys a caller presses


class Line(Protocol):
    """What the caller needs of its stream: a carrier's WebSocket, or a SIP call's process."""

    @property
    def close_code(self) -> int | None: ...
    async def send(self, message: str) -> None: ...
    def __aiter__(self) -> AsyncIterator[str | bytes]: ...
    async def close(self, code: int = 1000, reason: str = "") -> None: ...


async def reply_latency(times: list[float], levels: list[float], spoken: float, listen_seconds: float,
                        closed: Callable[[], bool]) -> float | None:
    """Listens until a whole reply to speech that ended at `spoken` was heard in the bot's audio (at most
    `listen_seconds`, or until the call closes): the reply's latency, or None without one."""
    deadline = time.monotonic() + listen_seconds
    while time.monotonic() < deadline and not closed():  # a hang-up ends the answer
        if reply_heard(times, levels, spoken, time.monotonic()):
            break
        await asyncio.sleep(0.05)
    reply = first_reply(times, levels, spoken)
    return None if reply is None else reply.start - spoken


class StreamClosed(ConnectionError):
    """The call's stream closed (the bot hung up) before the caller's speech or keys were all sent."""


class PhoneCall:
    """One call on `url` (`{wsUrl}/{token}`) in `framing`'s protocol; `headers` for an upgrade that
    carries its proof there; `open_line` opens another line than the WebSocket to `url`."""

    def __init__(self, url: str, framing: Framing, *, headers: dict[str, str] | None = None,
                 open_line: Callable[[], Awaitable[Line]] | None = None) -> None:
        self.url = url
        self.framing = framing
        self.headers = headers or {}
        self.open_line = open_line or self._websocket
        self.ids = framing.new_ids()
        self.ws: Line | None = None
        self.connected_at: float | None = None
        self.times: list[float] = []  # monotonic arrival of each frame of the bot's audio
        self.levels: list[float] = []
        self.last_speech_at: float | None = None  # monotonic time the caller's last loud frame went out
        self.spoken_at: float | None = None  # the last turn's end of speech, its reply timed from there
        self.lag = LagTrace()  # how far behind real time each frame went out
        self.keys_pressed: int = 0
        self._sequence = 1  # the carrier's number of its last message: `start` is 1
        self._frame = round(LINE_RATE * framing.frame_seconds)
        self._speech = np.zeros(0, dtype=np.int16)
        self._drained = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._due: float | None = None  # monotonic time the line's next frame is due

    async def _websocket(self) -> ClientConnection:
        return await connect(self.url, additional_headers=self.headers, proxy=None, compression=None,
                             open_timeout=OPEN_TIMEOUT, max_size=MAX_MESSAGE_BYTES)

    async def connect(self) -> None:
        self.ws = await self.open_line()
        for message in self.framing.opening(self.ids):
            await self.ws.send(json.dumps(message))
        self.connected_at = time.monotonic()
        self._tasks += [asyncio.create_task(self._line()), asyncio.create_task(self._listen())]

    def behind(self) -> float:
        """Seconds the line is behind real time: how late its next frame is (0 before it started)."""
        return 0.0 if self._due is None else max(0.0, time.monotonic() - self._due)

    def first_frame_at(self) -> float | None:
        return self.times[0] if self.times else None

    def first_audio_at(self) -> float | None:
        segments = loud_segments(self.times, self.levels)
        return segments[0].start if segments else None

    async def turn(self, speech: Pcm, *, listen_seconds: float) -> float | None:
        """Says `speech` (any rate: sent at 8 kHz) and listens until a whole reply was heard (at most
        `listen_seconds`): the reply's latency from the end of the speech, or None without one."""
        began = time.monotonic()
        self._speech = np.concatenate([self._speech, resample(speech, LINE_RATE).samples])
        self._drained.clear()
        await self._sent(speech.seconds + 5.0)
        # Timed from this turn's own speech; a turn of silence (no loud frame) from its audio's end, not
        # from the previous turn's speech, whose answer would count as its reply.
        spoken = self.last_speech_at if self.last_speech_at is not None and self.last_speech_at >= began \
            else time.monotonic()
        self.spoken_at = spoken
        return await reply_latency(self.times, self.levels, spoken, listen_seconds, self.closed)

    async def _sent(self, timeout: float) -> None:
        """Until the line has sent the speech; StreamClosed as soon as the stream closes first (the line
        then stops sending), TimeoutError past `timeout`."""
        sending = asyncio.ensure_future(self._drained.wait())
        try:
            await asyncio.wait({sending, *self._tasks}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sending.cancel()
        if not self._drained.is_set():
            if self.closed():
                raise StreamClosed(f"the call's stream closed mid-turn (code {self._close_code()})")
            raise TimeoutError(f"the caller's speech was not all sent within {timeout:g} s")

    def closed(self) -> bool:
        """Whether the stream has closed (the bot hung up, or the caller did)."""
        return self.ws is not None and self.ws.close_code is not None or any(t.done() for t in self._tasks)

    def _close_code(self) -> int | None:
        return None if self.ws is None else self.ws.close_code

    async def press(self, digits: str, *, every: float = KEY_SECONDS) -> None:
        """Presses each key of `digits` (0-9, *, #) in turn, `every` seconds apart, as a person does:
        one of the carrier's `dtmf` messages a key."""
        for index, digit in enumerate(digits):
            if index:
                await asyncio.sleep(every)
            self.keys_pressed += 1
            try:
                await self._send(self.framing.key(self.ids, self._next(), digit))
            except ConnectionClosed:
                raise StreamClosed(f"the call's stream closed before key {digit!r} (code {self._close_code()})"
                                   ) from None

    async def close(self) -> None:
        """Hangs up as the carrier does: its last message (Twilio's, Telnyx's, Exotel's `stop`), then
        the socket closes."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.ws is not None:
            stop = self.framing.hang_up(self.ids, self._next())
            if stop is not None:
                with contextlib.suppress(ConnectionClosed, OSError):
                    await self.ws.send(json.dumps(stop))
            await self.ws.close()

    def _next(self) -> int:
        self._sequence += 1
        return self._sequence

    async def _send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps(message))

    async def _line(self) -> None:
        """A frame every frame's length, on time: the caller's speech while there is some, else silence."""
        loop = asyncio.get_running_loop()
        began, chunk = loop.time(), 0
        with contextlib.suppress(ConnectionClosed):
            while True:
                block = np.zeros(self._frame, dtype=np.int16)
                part = self._speech[: self._frame]
                block[: len(part)] = part
                self._speech = self._speech[self._frame :]
                chunk += 1
                await self._send(self.framing.media(self.ids, self._next(), chunk, block))
                now = time.monotonic()
                self.lag.note(now, now - (began + (chunk - 1) * self.framing.frame_seconds))
                if rms(block) > SPEECH_RMS:
                    self.last_speech_at = now
                if len(self._speech) == 0:
                    self._drained.set()
                self._due = began + chunk * self.framing.frame_seconds
                await asyncio.sleep(max(0.0, self._due - loop.time()))

    async def _listen(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                message = json.loads(raw)
                samples = self.framing.bot_audio(message) if isinstance(message, dict) else None
                if samples is not None:
                    self.times.append(time.monotonic())
                    self.levels.append(rms(samples))
