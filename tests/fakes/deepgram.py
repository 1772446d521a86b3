"""Deepgram's live transcription WebSocket (`wss://api.deepgram.com/v1/listen`), as far as a
streaming STT client uses it.

Wire contract (developers.deepgram.com, "Live Audio" / "Results"): the handshake carries
`Authorization: Token <key>` and the audio format as query parameters (`encoding`, `sample_rate`,
`channels`, plus model options); the client then sends binary audio and JSON control messages
(`KeepAlive`, `Finalize`, `CloseStream`); the server answers with JSON `Results` messages
(`channel.alternatives[0].transcript`, `is_final`, `speech_final`, `from_finalize`, `metadata`).

The fake transcribes nothing: it answers `transcript` for an utterance, and an utterance is only
heard when the audio really carries sound — `speech_seconds` of non-silent linear16 audio followed
by `endpoint_seconds` of quiet (Deepgram's endpointing), or a `Finalize` after enough sound. A
client that streams silence or nothing gets no transcript.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

SILENCE_RMS = 300.0  # int16 RMS under which a chunk counts as silence (WebRTC comfort noise is ~0)
REQUIRED_QUERY = ("encoding", "sample_rate")
CONTROL_TYPES = ("KeepAlive", "Finalize", "CloseStream")


@dataclass
class ListenConnection:
    query: dict[str, str]
    headers: dict[str, str]
    audio_bytes: int = 0
    voiced_seconds: float = 0.0
    controls: list[str] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)  # what the fake sent


class FakeDeepgram:
    def __init__(
        self,
        api_key: str,
        transcript: str = "what is the weather like in paris",
        speech_seconds: float = 0.5,
        endpoint_seconds: float = 0.3,
    ) -> None:
        self.url = ""  # set by `serve`
        self.api_key = api_key
        self.transcript = transcript
        self.speech_seconds = speech_seconds
        self.endpoint_seconds = endpoint_seconds
        self.connections: list[ListenConnection] = []
        self.rejected: list[str] = []  # why handshakes were refused
        self._lock = threading.Lock()

    def app(self) -> Starlette:
        return Starlette(routes=[WebSocketRoute("/v1/listen", self._listen)])

    def transcripts_sent(self) -> list[str]:
        with self._lock:
            return [
                r["channel"]["alternatives"][0]["transcript"]
                for c in self.connections
                for r in c.results
                if r["channel"]["alternatives"][0]["transcript"]
            ]

    async def _listen(self, ws: WebSocket) -> None:
        problem = self._handshake_problem(ws)
        if problem:
            with self._lock:
                self.rejected.append(problem)
            await ws.close(code=1008)  # before accept: the client sees HTTP 403
            return
        await ws.accept()
        conn = ListenConnection(dict(ws.query_params), dict(ws.headers))
        with self._lock:
            self.connections.append(conn)
        rate = int(conn.query["sample_rate"])
        channels = int(conn.query.get("channels", "1"))
        utterance = _Utterance()
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("bytes") is not None:
                    await self._audio(ws, conn, utterance, message["bytes"], rate, channels)
                elif message.get("text") is not None:
                    if not await self._control(ws, conn, utterance, message["text"]):
                        return
        except WebSocketDisconnect:
            return

    def _handshake_problem(self, ws: WebSocket) -> str | None:
        if ws.headers.get("authorization") != f"Token {self.api_key}":
            return "authorization is not 'Token <key>'"
        missing = [q for q in REQUIRED_QUERY if q not in ws.query_params]
        if missing:
            return f"missing query parameters {missing}"
        if ws.query_params["encoding"] != "linear16":
            return f"unsupported encoding {ws.query_params['encoding']!r}"
        return None

    async def _audio(
        self, ws: WebSocket, conn: ListenConnection, utterance: _Utterance, data: bytes, rate: int, channels: int
    ) -> None:
        if len(data) % (2 * channels):
            await ws.close(code=1011, reason="audio is not whole linear16 frames")
            return
        samples = np.frombuffer(data, dtype="<i2").astype(np.float64)
        seconds = len(samples) / channels / rate
        loud = len(samples) > 0 and float(np.sqrt(np.mean(samples**2))) > SILENCE_RMS
        conn.audio_bytes += len(data)
        utterance.advance(seconds, loud)
        if loud:
            conn.voiced_seconds += seconds
        if utterance.voiced >= self.speech_seconds and utterance.quiet >= self.endpoint_seconds:
            await self._send(ws, conn, utterance.take(), speech_final=True, from_finalize=False)

    async def _control(self, ws: WebSocket, conn: ListenConnection, utterance: _Utterance, text: str) -> bool:
        try:
            kind = json.loads(text).get("type")
        except (ValueError, AttributeError):
            kind = None
        if kind not in CONTROL_TYPES:
            await ws.close(code=1008, reason="unknown control message")
            return False
        conn.controls.append(str(kind))
        if kind == "CloseStream":
            await ws.close()
            return False
        if kind == "Finalize":
            heard = utterance.voiced >= self.speech_seconds
            await self._send(ws, conn, utterance.take(), speech_final=False, from_finalize=True, empty=not heard)
        return True

    async def _send(
        self,
        ws: WebSocket,
        conn: ListenConnection,
        span: tuple[float, float],
        *,
        speech_final: bool,
        from_finalize: bool,
        empty: bool = False,
    ) -> None:
        start, duration = span
        transcript = "" if empty else self.transcript
        words = transcript.split()
        step = duration / max(len(words), 1)
        result = {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": duration,
            "start": start,
            "is_final": True,
            "speech_final": speech_final,
            "from_finalize": from_finalize,
            "channel": {
                "alternatives": [
                    {
                        "transcript": transcript,
                        "confidence": 0.99 if words else 0.0,
                        "words": [
                            {
                                "word": w,
                                "start": start + i * step,
                                "end": start + (i + 1) * step,
                                "confidence": 0.99,
                                "punctuated_word": w,
                            }
                            for i, w in enumerate(words)
                        ],
                    }
                ]
            },
            "metadata": {
                "request_id": str(uuid.uuid4()),
                "model_info": {"name": "fake-nova", "version": "0", "arch": "fake"},
                "model_uuid": str(uuid.uuid4()),
            },
        }
        with self._lock:
            conn.results.append(result)
        await ws.send_text(json.dumps(result))


class _Utterance:
    """Sound since the last answer: where it began, how much was loud, how long it has been quiet."""

    def __init__(self) -> None:
        self.clock = 0.0  # seconds of audio received on this connection
        self.start: float | None = None
        self.voiced = 0.0
        self.quiet = 0.0

    def advance(self, seconds: float, loud: bool) -> None:
        if loud:
            if self.start is None:
                self.start = self.clock
            self.voiced += seconds
            self.quiet = 0.0
        else:
            self.quiet += seconds
        self.clock += seconds

    def take(self) -> tuple[float, float]:
        start = self.clock if self.start is None else self.start
        span = (start, self.clock - start)
        self.start, self.voiced, self.quiet = None, 0.0, 0.0
        return span
