"""Cartesia's streaming TTS WebSocket (`wss://api.cartesia.ai/tts/websocket`), as Pipecat's
CartesiaTTSService speaks it.

Wire contract (docs.cartesia.ai, "TTS WebSocket"): the handshake carries `X-API-Key` and
`Cartesia-Version`; each request is JSON with `context_id`, `model_id`, `transcript`, `voice`
(`{"mode": "id", "id": ...}`), `output_format` (`container` raw, `encoding` pcm_s16le,
`sample_rate`), `continue` (false closes the context), `add_timestamps`; `{"context_id",
"cancel": true}` cancels. The server answers per context: `chunk` messages (`data` = base64 PCM),
`timestamps` (`word_timestamps.words/start/end`) when asked, and `done` once a closed context has
been spoken.

The voice is a 440 Hz tone, `seconds_per_word` long per word: real PCM of the requested format.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

REQUIRED = ("context_id", "model_id", "transcript", "voice", "output_format")
CHUNK_SECONDS = 0.1


@dataclass
class TtsConnection:
    headers: dict[str, str]
    requests: list[dict[str, Any]] = field(default_factory=list)
    spoken: list[str] = field(default_factory=list)  # transcripts turned into audio
    audio_seconds: float = 0.0


class FakeCartesia:
    def __init__(self, api_key: str, seconds_per_word: float = 0.2) -> None:
        self.url = ""  # set by `serve`
        self.api_key = api_key
        self.seconds_per_word = seconds_per_word
        self.connections: list[TtsConnection] = []
        self.rejected: list[str] = []
        self._lock = threading.Lock()

    def app(self) -> Starlette:
        return Starlette(routes=[WebSocketRoute("/tts/websocket", self._tts)])

    def spoken(self) -> list[str]:
        with self._lock:
            return [t for c in self.connections for t in c.spoken]

    async def _tts(self, ws: WebSocket) -> None:
        problem = None
        if ws.headers.get("x-api-key") != self.api_key:
            problem = "X-API-Key is not the key"
        elif not ws.headers.get("cartesia-version"):
            problem = "no Cartesia-Version header"
        if problem:
            with self._lock:
                self.rejected.append(problem)
            await ws.close(code=1008)
            return
        await ws.accept()
        conn = TtsConnection(dict(ws.headers))
        with self._lock:
            self.connections.append(conn)
        try:
            while True:
                request = json.loads(await ws.receive_text())
                conn.requests.append(request)
                await self._serve(ws, conn, request)
        except WebSocketDisconnect:
            return

    async def _serve(self, ws: WebSocket, conn: TtsConnection, request: Any) -> None:
        context_id = request.get("context_id") if isinstance(request, dict) else None
        if not context_id:
            await ws.send_text(
                json.dumps({"type": "error", "status_code": 400, "done": True, "error": "no context_id"})
            )
            return
        if request.get("cancel") is True:
            return
        missing = [k for k in REQUIRED if k not in request]
        fmt = request.get("output_format") or {}
        if missing or fmt.get("container") != "raw" or fmt.get("encoding") != "pcm_s16le":
            error = f"missing {missing}" if missing else f"unsupported output_format {fmt}"
            await ws.send_text(
                json.dumps(
                    {"type": "error", "context_id": context_id, "status_code": 400, "done": True, "error": error}
                )
            )
            return
        words = request["transcript"].split()
        if words:
            conn.spoken.append(request["transcript"])
            rate = int(fmt["sample_rate"])
            if request.get("add_timestamps"):
                starts = [i * self.seconds_per_word for i in range(len(words))]
                await self._send(
                    ws,
                    "timestamps",
                    context_id,
                    word_timestamps={
                        "words": words,
                        "start": starts,
                        "end": [s + self.seconds_per_word for s in starts],
                    },
                )
            pcm = tone(len(words) * self.seconds_per_word, rate)
            step = int(CHUNK_SECONDS * rate) * 2
            for offset in range(0, len(pcm), step):
                data = base64.b64encode(pcm[offset : offset + step]).decode()
                await self._send(ws, "chunk", context_id, data=data, step_time=1.0)
            conn.audio_seconds += len(pcm) / 2 / rate
        if request.get("continue") is False:
            await self._send(ws, "done", context_id, done=True, status_code=200)

    @staticmethod
    async def _send(ws: WebSocket, kind: str, context_id: str, **fields: Any) -> None:
        message = {"type": kind, "context_id": context_id, "status_code": 206, "done": False}
        message.update(fields)
        await ws.send_text(json.dumps(message))


def tone(seconds: float, rate: int, hz: float = 440.0, amplitude: int = 8000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()
