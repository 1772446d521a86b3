"""Google's Gemini Live API (`BidiGenerateContent` over a WebSocket), as far as a speech-to-speech
client uses it. For tests and benchmarks only, never a deployment.

Wire contract (ai.google.dev/api/live, the v1beta protocol the google-genai SDK speaks): the client
dials `wss://…/ws/google.ai.generativelanguage.<version>.GenerativeService.BidiGenerateContent` with
its key in `x-goog-api-key` (or `?key=`), and its first message is `setup` (a model, the generation
config, the session-resumption config with or without a handle); the server answers `setupComplete`.
Audio goes in as base64 PCM16 in `realtimeInput.audio` (`audio/pcm;rate=N`); the server's own VAD
finds the end of a turn; the answer comes back as `serverContent.modelTurn` parts with inline audio
(`audio/pcm;rate=24000`), then `generationComplete` and `turnComplete`. With session resumption on,
`sessionResumptionUpdate` carries a `newHandle` after the set-up and after each turn. Before the
server ends a connection it sends `goAway` with the `timeLeft`, then closes.

What the real server refuses, the fake refuses the same way: it closes the socket with code 1007 and
the server's words (an unknown field: `Invalid JSON payload received. Unknown name "x" at 'setup':
Cannot find field.`; a wrong key: `API key not valid. Please pass a valid API key.`; a first message
that is not `setup`: `Request contains an invalid argument.`), and 1008 for a model it does not serve.
Google publishes no words for a refused resumption handle: `refuse_resumption` picks the close.

The fake hears only real sound (RMS above comfort noise) and answers each turn (or realtime text)
with `answer_seconds` of a tone after `delay_seconds` (the scripted model time a benchmark subtracts),
all at once or, `paced`, in real time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.fakes.gemini_live_setup import SETUP_PATH, Refusal, camel, client_message_problem, setup_problem, value
from tests.fakes.openai_realtime import SILENCE_RMS, _Turn, tone_chunks

OUT_RATE = 24000  # what Gemini Live speaks
IN_RATE = 16000  # what it assumes when the mime type names no rate
MODELS = ("models/gemini-3.8-live", "models/gemini-2.5-flash-native-audio-preview-12-2025")
BAD_KEY: Refusal = (1007, "API key not valid. Please pass a valid API key.")
NOT_SETUP: Refusal = (1007, "Request contains an invalid argument.")
DEADLINE: Refusal = (1011, "Deadline expired before operation could complete.")


def unknown_model(model: str, version: str) -> Refusal:
    return (
        1008,
        bounded(
            f"{model} is not found for API version {version}, or is not supported for bidiGenerateContent. "
            "Call ListModels to see the list of available models and their supported methods."
        ),
    )


def bounded(reason: str) -> str:
    """A close reason within the 123 bytes a WebSocket close frame holds (RFC 6455 5.5): the real
    server's longer words arrive cut there."""
    return reason.encode()[:123].decode(errors="ignore")


@dataclass
class LiveConnection:
    model: str
    setup: dict[str, Any]
    resumed_from: str | None  # the handle the client resumed with, or None for a new session
    received: list[str] = field(default_factory=list)  # the client messages' kinds, in order
    sent: list[dict[str, Any]] = field(default_factory=list)
    audio_bytes: int = 0
    # Per answered turn, on time.monotonic(): (the turn's last loud audio arrived, its first answer left).
    turns: list[tuple[float, float]] = field(default_factory=list)
    last_loud_at: float = 0.0
    closed_with: tuple[int, str] | None = None


class FakeGeminiLive:
    def __init__(
        self,
        api_key: str,
        *,
        delay_seconds: float = 0.2,
        answer_seconds: float = 0.6,
        speech_seconds: float = 0.3,
        silence_seconds: float = 0.5,
        models: tuple[str, ...] = MODELS,
        paced: bool = False,
    ) -> None:
        self.url = ""  # https://host:port (the SDK dials wss:// there), set by the fixture that serves it
        self.ca: Path | None = None  # the CA certificate a client trusts, set with `url`
        self.api_key = api_key
        self.delay_seconds = delay_seconds
        self.answer_seconds = answer_seconds
        self.speech_seconds = speech_seconds
        self.silence_seconds = silence_seconds
        self.models = models
        # The answer's audio sent in real time, as a model speaking it does, not all at once: a close
        # mid-answer leaves the rest unsent.
        self.paced = paced
        # A resumption with a handle this fake issued is accepted unless this is set: then the
        # connection is closed with it before `setupComplete`.
        self.refuse_resumption: Refusal | None = None
        self.connections: list[LiveConnection] = []
        self.refused: list[Refusal] = []  # every close before `setupComplete`, in order
        self.refused_at: list[float] = []  # when each was sent, on the wall clock a session's timeline uses
        self._handles: set[str] = set()
        self._open: dict[int, tuple[WebSocket, LiveConnection, asyncio.AbstractEventLoop]] = {}
        self._lock = threading.Lock()

    def app(self) -> Starlette:
        return Starlette(routes=[WebSocketRoute(SETUP_PATH, self._live)])

    def go_away(self, time_left: float = 1.0, close: Refusal = DEADLINE) -> int:
        """Warn every open connection with `goAway` and close it with `close` `time_left` seconds later,
        from any thread; returns how many were warned."""
        with self._lock:
            open_now = list(self._open.values())
        for ws, conn, loop in open_now:
            asyncio.run_coroutine_threadsafe(self._go_away(ws, conn, time_left, close), loop).result(timeout=5)
        return len(open_now)

    async def _live(self, ws: WebSocket) -> None:
        await ws.accept()  # the real server refuses nothing at the handshake: it closes after `setup`
        version = ws.path_params["version"]
        try:
            first = await ws.receive_text()
        except WebSocketDisconnect:
            return
        found = self._setup_refusal(ws, first, version)
        if found:
            await ws.close(found[0], bounded(found[1]))
            with self._lock:
                self.refused.append(found)
                self.refused_at.append(time.time())
            return
        setup = json.loads(first)["setup"]
        handle = (value(setup, "sessionResumption") or {}).get("handle")
        conn = LiveConnection(setup["model"], setup, handle)
        conn.received.append("setup")
        with self._lock:
            self.connections.append(conn)
            self._open[id(conn)] = (ws, conn, asyncio.get_running_loop())
        try:
            await self._send(ws, conn, {"setupComplete": {"sessionId": uuid.uuid4().hex}})
            await self._resumption_update(ws, conn)
            await self._serve(ws, conn)
        except (WebSocketDisconnect, RuntimeError):
            pass  # the client went away, or the fake closed the socket itself
        finally:
            with self._lock:
                self._open.pop(id(conn), None)

    def _setup_refusal(self, ws: WebSocket, first: str, version: str) -> Refusal | None:
        try:
            message = json.loads(first)
        except json.JSONDecodeError:
            return (1007, "Invalid JSON payload received. Unexpected token.")
        if not isinstance(message, dict) or "setup" not in message:
            return NOT_SETUP
        key = ws.headers.get("x-goog-api-key") or ws.query_params.get("key")
        if key != self.api_key:
            return BAD_KEY
        problem = client_message_problem(message) or setup_problem(message["setup"])
        if problem:
            return problem
        setup = message["setup"]
        if setup.get("model") not in self.models:
            return unknown_model(str(setup.get("model")), version)
        handle = (value(setup, "sessionResumption") or {}).get("handle")
        if handle is not None:
            if self.refuse_resumption is not None:
                return self.refuse_resumption
            if handle not in self._handles:
                return (1007, "Request contains an invalid argument.")
        return None

    async def _serve(self, ws: WebSocket, conn: LiveConnection) -> None:
        turn = _Turn()
        while conn.closed_with is None:
            message = json.loads(await ws.receive_text())
            problem = client_message_problem(message)
            if problem or "setup" in message:
                await self._close(ws, conn, problem or (1007, "Request contains an invalid argument."))
                return
            name = next(iter(message))
            kind = camel(name)
            conn.received.append(kind)
            if kind == "realtimeInput":
                await self._realtime_input(ws, conn, turn, message[name])
            elif kind == "clientContent" and value(message[name], "turnComplete"):
                turn.responding = asyncio.create_task(self._respond(ws, conn, turn))

    async def _realtime_input(self, ws: WebSocket, conn: LiveConnection, turn: _Turn, event: dict) -> None:
        if isinstance(event.get("text"), str) and event["text"].strip():
            # Realtime text is a turn of the user's: the server infers its end and answers it.
            turn.responding = asyncio.create_task(self._respond(ws, conn, turn))
            return
        blob = event.get("audio")
        if not blob:
            return  # video, activity markers: heard, not answered
        mime = str(value(blob, "mimeType") or "")
        rate = IN_RATE
        if mime.startswith("audio/pcm;rate="):
            rate = int(mime.split("=", 1)[1])
        elif mime != "audio/pcm":
            await self._close(ws, conn, (1007, f"Unsupported mime type: {mime}."))
            return
        try:
            # Protobuf's JSON takes bytes in standard or URL-safe base64 (the SDK sends the latter).
            data = str(blob.get("data", "")).replace("-", "+").replace("_", "/")
            audio = base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
        except binascii.Error:
            await self._close(ws, conn, (1007, "Invalid value at 'realtime_input.audio.data' (TYPE_BYTES)."))
            return
        conn.audio_bytes += len(audio)
        samples = np.frombuffer(audio[: len(audio) // 2 * 2], dtype="<i2").astype(np.float64)
        loud = len(samples) > 0 and float(np.sqrt(np.mean(samples**2))) > SILENCE_RMS
        turn.advance(len(samples) / rate, loud)
        if loud:
            conn.last_loud_at = time.monotonic()
            if turn.voiced >= self.speech_seconds and turn.responding and not turn.responding.done():
                turn.cancelled = True  # the caller speaks over the answer: the server interrupts it
        if turn.voiced >= self.speech_seconds and turn.quiet >= self.silence_seconds:
            turn.reset()
            turn.responding = asyncio.create_task(self._respond(ws, conn, turn))

    async def _respond(self, ws: WebSocket, conn: LiveConnection, turn: _Turn) -> None:
        turn.cancelled = False
        await asyncio.sleep(self.delay_seconds)
        conn.turns.append((conn.last_loud_at, time.monotonic()))
        for chunk in tone_chunks(self.answer_seconds):
            if turn.cancelled or conn.closed_with:
                await self._send(ws, conn, {"serverContent": {"interrupted": True}})
                return
            part = {"inlineData": {"mimeType": f"audio/pcm;rate={OUT_RATE}", "data": base64.b64encode(chunk).decode()}}
            await self._send(ws, conn, {"serverContent": {"modelTurn": {"parts": [part]}}})
            await asyncio.sleep(len(chunk) / (2 * OUT_RATE) if self.paced else 0)
        await self._send(ws, conn, {"serverContent": {"generationComplete": True}})
        usage = {"promptTokenCount": 1, "responseTokenCount": 1, "totalTokenCount": 2}
        await self._send(ws, conn, {"serverContent": {"turnComplete": True}, "usageMetadata": usage})
        await self._resumption_update(ws, conn)

    async def _resumption_update(self, ws: WebSocket, conn: LiveConnection) -> None:
        if value(conn.setup, "sessionResumption") is None:
            return  # sent only to a client that asked for resumption
        handle = f"handle-{uuid.uuid4().hex}"
        with self._lock:
            self._handles.add(handle)
        await self._send(ws, conn, {"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}})

    async def _go_away(self, ws: WebSocket, conn: LiveConnection, time_left: float, close: Refusal) -> None:
        await self._send(ws, conn, {"goAway": {"timeLeft": f"{time_left:g}s"}})

        async def later() -> None:
            await asyncio.sleep(time_left)
            await self._close(ws, conn, close)

        asyncio.get_running_loop().create_task(later())

    async def _close(self, ws: WebSocket, conn: LiveConnection, close: Refusal) -> None:
        if conn.closed_with:
            return
        conn.closed_with = close
        await ws.close(close[0], bounded(close[1]))

    async def _send(self, ws: WebSocket, conn: LiveConnection, message: dict[str, Any]) -> None:
        if conn.closed_with:
            return
        with self._lock:
            conn.sent.append(message)
        await ws.send_text(json.dumps(message))
