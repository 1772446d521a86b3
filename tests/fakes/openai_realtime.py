"""OpenAI's Realtime WebSocket (`wss://api.openai.com/v1/realtime?model=...`), as far as a
speech-to-speech client uses it. For tests and benchmarks only, never a deployment.

Wire contract (platform.openai.com/docs/api-reference/realtime, the GA protocol): the handshake
carries `Authorization: Bearer <key>` and `?model=`; the server opens with `session.created`; the
client configures with `session.update` (the server answers `session.updated`, or an `error` event
`invalid_request_error` / `unknown_parameter` naming the refused field, and keeps the old session);
audio goes in as base64 PCM16 at 24 kHz in `input_audio_buffer.append`. With server VAD (the
default) the server finds the end of speech itself: `input_audio_buffer.speech_started`,
`speech_stopped`, `committed`, then a response. With turn detection off the client commits (at
least 100 ms of audio, or `input_audio_buffer_commit_empty`) and sends `response.create`.

The fake hears only real sound (RMS above comfort noise), then answers with `answer_seconds` of a
tone after `delay_seconds` (the scripted model time a benchmark subtracts). A session ends the
vendor's way on demand (`end_sessions`) or at `cap_seconds`: an `error` event in the real shape,
then a close with the code given.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.fakes.openai_realtime_session import session_problem

RATE = 24000  # the only PCM rate the GA protocol takes
SILENCE_RMS = 300.0
MIN_COMMIT_SECONDS = 0.1
CHUNK_SECONDS = 0.1  # the size of each response.output_audio.delta
# What OpenAI sends when a session reaches its cap (the field reference: "session_expired").
EXPIRED = {
    "type": "invalid_request_error",
    "code": "session_expired",
    "message": "Your session hit the maximum duration of 60 minutes.",
}


@dataclass
class RealtimeConnection:
    model: str
    session: dict[str, Any]
    received: list[str] = field(default_factory=list)  # client event types, in order
    sent: list[dict[str, Any]] = field(default_factory=list)
    audio_bytes: int = 0
    # Per answered turn, on time.monotonic(): (the last loud audio of the turn arrived, the answer's
    # first audio left). Their difference is the fake's own share of a turn: its VAD wait + delay.
    turns: list[tuple[float, float]] = field(default_factory=list)
    last_loud_at: float = 0.0
    spoken_ms: dict[str, int] = field(default_factory=dict)  # an assistant item's audio sent, by id
    closed_with: tuple[int, str] | None = None


def event_id() -> str:
    return f"event_{uuid.uuid4().hex[:20]}"


def error_event(kind: str, code: str, message: str, param: str | None = None, client_event: str | None = None) -> dict:
    return {
        "type": "error",
        "event_id": event_id(),
        "error": {"type": kind, "code": code, "message": message, "param": param, "event_id": client_event},
    }


class FakeOpenAIRealtime:
    def __init__(
        self,
        api_key: str,
        *,
        delay_seconds: float = 0.2,
        answer_seconds: float = 0.6,
        speech_seconds: float = 0.3,
        cap_seconds: float | None = None,
        cap_close: tuple[int, str] = (1000, ""),
    ) -> None:
        self.url = ""  # ws://host:port, set by the fixture that serves it
        self.api_key = api_key
        self.delay_seconds = delay_seconds
        self.answer_seconds = answer_seconds
        self.speech_seconds = speech_seconds
        self.cap_seconds = cap_seconds
        self.cap_close = cap_close
        self.connections: list[RealtimeConnection] = []
        self.rejected: list[str] = []
        self._open: dict[int, tuple[WebSocket, RealtimeConnection, asyncio.AbstractEventLoop]] = {}
        self._lock = threading.Lock()

    def app(self) -> Starlette:
        return Starlette(routes=[WebSocketRoute("/v1/realtime", self._realtime)])

    def end_sessions(self, code: int = 1000, reason: str = "", error: dict[str, str] | None = EXPIRED) -> int:
        """End every open session the vendor's way, from any thread; returns how many were ended."""
        with self._lock:
            open_now = list(self._open.values())
        for ws, conn, loop in open_now:
            future = asyncio.run_coroutine_threadsafe(self._end(ws, conn, code, reason, error), loop)
            future.result(timeout=5)
        return len(open_now)

    async def _realtime(self, ws: WebSocket) -> None:
        model = ws.query_params.get("model", "")
        problem = None
        if ws.headers.get("authorization") != f"Bearer {self.api_key}":
            problem = "authorization is not 'Bearer <key>'"
        elif not model:
            problem = "no ?model="
        if problem:
            with self._lock:
                self.rejected.append(problem)
            await ws.close(code=1008)  # before accept: the client sees an HTTP refusal
            return
        await ws.accept()
        conn = RealtimeConnection(model, default_session(model))
        with self._lock:
            self.connections.append(conn)
            self._open[id(conn)] = (ws, conn, asyncio.get_running_loop())
        cap = asyncio.create_task(self._cap(ws, conn)) if self.cap_seconds else None
        try:
            await self._send(ws, conn, {"type": "session.created", "event_id": event_id(), "session": conn.session})
            await self._serve(ws, conn)
        except (WebSocketDisconnect, RuntimeError):
            pass  # the client went away, or the fake closed the socket itself
        finally:
            if cap:
                cap.cancel()
            with self._lock:
                self._open.pop(id(conn), None)

    async def _serve(self, ws: WebSocket, conn: RealtimeConnection) -> None:
        turn = _Turn()
        while conn.closed_with is None:
            event = json.loads(await ws.receive_text())
            kind = event.get("type", "")
            conn.received.append(kind)
            handler = {
                "session.update": self._session_update,
                "input_audio_buffer.append": self._append,
                "input_audio_buffer.commit": self._commit,
                "input_audio_buffer.clear": self._clear,
                "response.create": self._response_create,
                "response.cancel": self._response_cancel,
                "conversation.item.create": self._item_create,
                "conversation.item.truncate": self._item_truncate,
            }.get(kind)
            if handler is None:
                await self._send(
                    ws,
                    conn,
                    error_event(
                        "invalid_request_error",
                        "invalid_value",
                        f"Invalid value: '{kind}'. Supported values are: {', '.join(CLIENT_EVENTS)}.",
                        "type",
                        event.get("event_id"),
                    ),
                )
                continue
            await handler(ws, conn, turn, event)

    async def _session_update(self, ws: WebSocket, conn: RealtimeConnection, turn: _Turn, event: dict) -> None:
        session = event.get("session")
        found = session_problem(session, conn.model)
        if found:
            code, message, param = found
            await self._send(
                ws, conn, error_event("invalid_request_error", code, message, param, event.get("event_id"))
            )
            return
        assert isinstance(session, dict)
        merge(conn.session, session)
        await self._send(ws, conn, {"type": "session.updated", "event_id": event_id(), "session": conn.session})

    async def _append(self, ws: WebSocket, conn: RealtimeConnection, turn: _Turn, event: dict) -> None:
        audio = base64.b64decode(event.get("audio", ""))
        if len(audio) % 2:
            await self._send(
                ws,
                conn,
                error_event("invalid_request_error", "invalid_value", "Audio is not whole PCM16 samples.", "audio"),
            )
            return
        conn.audio_bytes += len(audio)
        samples = np.frombuffer(audio, dtype="<i2").astype(np.float64)
        seconds = len(samples) / RATE
        loud = len(samples) > 0 and float(np.sqrt(np.mean(samples**2))) > SILENCE_RMS
        turn.advance(seconds, loud)
        if loud:
            conn.last_loud_at = time.monotonic()
        vad = conn.session["audio"]["input"]["turn_detection"]
        if vad is None:
            return
        if loud and turn.voiced >= self.speech_seconds and not turn.started:
            turn.started = True
            if turn.responding and not turn.responding.done() and vad.get("interrupt_response", True):
                turn.cancelled = True  # the caller speaks over the answer: the server cancels it
            await self._send(
                ws,
                conn,
                {
                    "type": "input_audio_buffer.speech_started",
                    "event_id": event_id(),
                    "audio_start_ms": int(turn.offset_ms + turn.start_ms),
                    "item_id": turn.item_id,
                },
            )
        quiet_needed = vad.get("silence_duration_ms", 500) / 1000
        if turn.started and turn.quiet >= quiet_needed:
            await self._send(
                ws,
                conn,
                {
                    "type": "input_audio_buffer.speech_stopped",
                    "event_id": event_id(),
                    "audio_end_ms": int(turn.offset_ms + turn.clock * 1000),
                    "item_id": turn.item_id,
                },
            )
            item_id = turn.item_id
            await self._committed(ws, conn, item_id)
            turn.reset()
            if vad.get("create_response", True):
                turn.responding = asyncio.create_task(self._respond(ws, conn, turn))

    async def _commit(self, ws: WebSocket, conn: RealtimeConnection, turn: _Turn, event: dict) -> None:
        if turn.clock < MIN_COMMIT_SECONDS:
            await self._send(
                ws,
                conn,
                error_event(
                    "invalid_request_error",
                    "input_audio_buffer_commit_empty",
                    "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, "
                    f"but buffer only has {turn.clock * 1000:.2f}ms of audio.",
                    None,
                    event.get("event_id"),
                ),
            )
            return
        await self._committed(ws, conn, turn.item_id)
        turn.reset()

    async def _clear(self, ws: WebSocket, conn: RealtimeConnection, turn: _Turn, event: dict) -> None:
        turn.reset()
        await self._send(ws, conn, {"type": "input_audio_buffer.cleared", "event_id": event_id()})

    async def _response_create(self, ws: WebSocket, conn: RealtimeConnection, turn: _Turn, event: dict) -> None:
        if turn.responding and not turn.responding.done():
            await self._send(
                ws,
                conn,
                error_event(
                    "invalid_request_error",
                    "conversation_already_has_active_response",
                    "Conversation already has an active response in progress.",
                    None,
                    event.get("event_id"),
                ),
            )
            return
        turn.responding = asyncio.create_task(self._respond(ws, conn, turn))

    async def _response_cancel(self, ws: WebSocket, conn: RealtimeConnection, turn: _Turn, event: dict) -> None:
        if not (turn.responding and not turn.responding.done()):
            await self._send(
                ws,
                conn,
                error_event(
                    "invalid_request_error",
                    "response_cancel_not_active",
                    "Cancellation failed: no active response found",
                    None,
                    event.get("event_id"),
                ),
            )
            return
        turn.cancelled = True

    async def _item_create(self, ws: WebSocket, conn: RealtimeConnection, turn: _Turn, event: dict) -> None:
        item = dict(event.get("item") or {})
        item.setdefault("id", f"item_{uuid.uuid4().hex[:20]}")
        item.update({"object": "realtime.item", "status": "completed"})
        await self._send(ws, conn, {"type": "conversation.item.added", "event_id": event_id(), "item": item})
        await self._send(ws, conn, {"type": "conversation.item.done", "event_id": event_id(), "item": item})

    async def _item_truncate(self, ws: WebSocket, conn: RealtimeConnection, turn: _Turn, event: dict) -> None:
        item_id, end_ms = event.get("item_id"), event.get("audio_end_ms", -1)
        spoken = conn.spoken_ms.get(str(item_id))
        if spoken is None or not isinstance(end_ms, int) or not 0 <= end_ms <= spoken:
            message = (
                f"Invalid value: item {item_id!r} has no assistant audio."
                if spoken is None
                else f"Audio content of {spoken}ms is shorter than {end_ms}ms."
            )
            param = "item_id" if spoken is None else "audio_end_ms"
            await self._send(
                ws, conn, error_event("invalid_request_error", "invalid_value", message, param, event.get("event_id"))
            )
            return
        conn.spoken_ms[str(item_id)] = end_ms
        truncated = {"item_id": item_id, "content_index": event.get("content_index", 0), "audio_end_ms": end_ms}
        await self._send(ws, conn, {"type": "conversation.item.truncated", "event_id": event_id(), **truncated})

    async def _committed(self, ws: WebSocket, conn: RealtimeConnection, item_id: str) -> None:
        await self._send(
            ws,
            conn,
            {
                "type": "input_audio_buffer.committed",
                "event_id": event_id(),
                "previous_item_id": None,
                "item_id": item_id,
            },
        )
        item = {"id": item_id, "object": "realtime.item", "type": "message", "status": "completed", "role": "user"}
        item["content"] = [{"type": "input_audio", "transcript": None}]
        await self._send(ws, conn, {"type": "conversation.item.added", "event_id": event_id(), "item": item})

    async def _respond(self, ws: WebSocket, conn: RealtimeConnection, turn: _Turn) -> None:
        turn.cancelled = False
        response_id = f"resp_{uuid.uuid4().hex[:20]}"
        item_id = f"item_{uuid.uuid4().hex[:20]}"
        response = {"id": response_id, "object": "realtime.response", "status": "in_progress", "output": []}
        await self._send(ws, conn, {"type": "response.created", "event_id": event_id(), "response": response})
        await asyncio.sleep(self.delay_seconds)
        item = {"id": item_id, "object": "realtime.item", "type": "message", "status": "in_progress"}
        item.update({"role": "assistant", "content": []})
        await self._send(ws, conn, {"type": "conversation.item.added", "event_id": event_id(), "item": item})
        conn.turns.append((conn.last_loud_at, time.monotonic()))
        where = {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}
        status = "completed"
        for chunk in tone_chunks(self.answer_seconds):
            if turn.cancelled or conn.closed_with:
                status = "cancelled"
                break
            conn.spoken_ms[item_id] = conn.spoken_ms.get(item_id, 0) + len(chunk) * 1000 // (2 * RATE)
            delta = base64.b64encode(chunk).decode()
            await self._send(
                ws, conn, {"type": "response.output_audio.delta", "event_id": event_id(), **where, "delta": delta}
            )
            await asyncio.sleep(0)
        if conn.closed_with:
            return
        await self._send(ws, conn, {"type": "response.output_audio.done", "event_id": event_id(), **where})
        item.update({"status": "completed" if status == "completed" else "incomplete"})
        await self._send(ws, conn, {"type": "conversation.item.done", "event_id": event_id(), "item": item})
        done = {**response, "status": status, "output": [item]}
        await self._send(ws, conn, {"type": "response.done", "event_id": event_id(), "response": done})

    async def _cap(self, ws: WebSocket, conn: RealtimeConnection) -> None:
        assert self.cap_seconds is not None
        await asyncio.sleep(self.cap_seconds)
        await self._end(ws, conn, *self.cap_close, EXPIRED)

    async def _end(
        self, ws: WebSocket, conn: RealtimeConnection, code: int, reason: str, error: dict[str, str] | None
    ) -> None:
        if conn.closed_with:
            return
        if error:
            await self._send(ws, conn, {"type": "error", "event_id": event_id(), "error": {**error, "param": None}})
        conn.closed_with = (code, reason)
        await ws.close(code=code, reason=reason)

    async def _send(self, ws: WebSocket, conn: RealtimeConnection, event: dict[str, Any]) -> None:
        if conn.closed_with:
            return
        with self._lock:
            conn.sent.append(event)
        await ws.send_text(json.dumps(event))


CLIENT_EVENTS = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.retrieve",
    "conversation.item.truncate",
    "conversation.item.delete",
    "response.create",
    "response.cancel",
    "output_audio_buffer.clear",
)


def default_session(model: str) -> dict[str, Any]:
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": f"sess_{uuid.uuid4().hex[:20]}",
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": RATE},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                    "create_response": True,
                    "interrupt_response": True,
                },
            },
            "output": {"format": {"type": "audio/pcm", "rate": RATE}, "voice": "alloy", "speed": 1.0},
        },
    }


def merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    """A session.update changes only the fields it names; nested objects merge, null clears."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict) and key != "turn_detection":
            merge(into[key], value)
        else:
            into[key] = value


def tone_chunks(seconds: float) -> list[bytes]:
    t = np.arange(int(seconds * RATE)) / RATE
    pcm = (6000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
    step = int(CHUNK_SECONDS * RATE) * 2
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]


class _Turn:
    """The input buffer since the last commit: how long, how much loud, how long quiet."""

    def __init__(self) -> None:
        self.responding: asyncio.Task[None] | None = None
        self.cancelled = False
        self.reset()

    def reset(self) -> None:
        """A new input buffer; audio times stay counted from the session's first audio."""
        self.offset_ms = getattr(self, "offset_ms", 0.0) + getattr(self, "clock", 0.0) * 1000
        self.item_id = f"item_{uuid.uuid4().hex[:20]}"
        self.clock = 0.0
        self.start_ms = 0.0
        self.voiced = 0.0
        self.quiet = 0.0
        self.started = False

    def advance(self, seconds: float, loud: bool) -> None:
        if loud:
            if self.voiced == 0.0:
                self.start_ms = self.clock * 1000
            self.voiced += seconds
            self.quiet = 0.0
        else:
            self.quiet += seconds
        self.clock += seconds
