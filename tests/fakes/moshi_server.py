"""A CPU stand-in for a shared speech-to-speech model server speaking Moshi's protocol (kyutai's
`moshi.server`, which PersonaPlex serves too). For tests and benchmarks only, never a deployment.

Wire contract, as `moshi.server` speaks it: a WebSocket at `GET /api/chat`; every message is binary,
its first byte its kind: 0 handshake (the server's first message once the stream is the caller's),
1 audio (Ogg pages of Opus at 24 kHz, mono), 2 text (UTF-8 pieces of what the model says), 5 error
(UTF-8). A text (non-binary) message, an empty one or an unknown kind is ignored, as the server does.

What a real server lacks and this one adds, as a batched server in front of the model must:
- `streams` slots: a stream past them is refused (an error message, then close 1013), where
  `moshi.server` itself queues it behind its lock and the caller hears nothing (the silent stall);
- `GET /api/capacity` answering `{"free": n, "total": N}`, which the dispatcher reads
  (dispatcher/models/capacity.py);
- audio that is not Ogg is refused (an error message, then close 1003): the real server's Opus reader
  cannot read it either.

It answers each stream's first audio after `delay` seconds with a scripted reply: text pieces and a
tone, real Ogg/Opus, one page per message. Knobs for tests, on the same port: `POST /fake/capacity`
(`{"answer": <any JSON>}`: what the capacity endpoint says instead, `null` to stop), `POST /fake/die`
(the process exits at once, its streams cut, as a GPU process that crashes). Run as a process:

    python -m tests.fakes.moshi_server --port 8998 --streams 2 --delay 0.2
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.support.ports import free_port
from tests.support.processes import terminate
from tests.support.waiting import wait_until

HANDSHAKE, AUDIO, TEXT, ERROR = 0, 1, 2, 5
RATE = 24000  # Mimi's rate: the only one the protocol carries
FRAME_SECONDS = 0.08  # one model step (12.5 Hz): the reply is paced a page per frame
TRY_AGAIN_LATER = 1013
UNSUPPORTED_DATA = 1003
REPO = Path(__file__).parents[2]  # `python -m tests.fakes.moshi_server` runs from the repository's root
REPLY_TEXT = ("Hello", ",", " how", " can", " I", " help", "?")


def ogg_pages(data: bytes) -> list[bytes]:
    """An Ogg stream cut into its pages (each: a 27-byte header, its segment table, its segments)."""
    pages, at = [], 0
    while at < len(data):
        if data[at:at + 4] != b"OggS":
            raise ValueError(f"no Ogg page at byte {at}")
        segments = data[at + 26]
        size = 27 + segments + sum(data[at + 27:at + 27 + segments])
        pages.append(data[at:at + size])
        at += size
    return pages


def tone_pages(seconds: float, hz: float = 440.0) -> list[bytes]:
    """`seconds` of a tone as Opus in Ogg, at Moshi's rate, cut into pages."""
    import av  # aiortc's dependency: only this stand-in encodes audio itself

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=RATE)
        stream.layout = "mono"  # type: ignore[union-attr]
        t = np.arange(int(RATE * seconds)) / RATE
        pcm = (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
        frame.sample_rate = RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:  # type: ignore[union-attr]
            container.mux(packet)
    return ogg_pages(buffer.getvalue())


@dataclass
class ModelServer:
    streams: int
    delay: float = 0.2
    reply_seconds: float = 0.5
    open_streams: int = 0
    capacity_answer: Any = None  # set: what /api/capacity says instead of the truth
    received: dict[str, int] = field(default_factory=lambda: {"audio": 0, "ignored": 0, "refused": 0})
    _reply: list[bytes] | None = None

    def reply(self) -> list[bytes]:
        if self._reply is None:
            self._reply = tone_pages(self.reply_seconds)
        return self._reply

    async def chat(self, websocket: WebSocket) -> None:
        await websocket.accept()
        if self.open_streams >= self.streams:
            self.received["refused"] += 1
            await refuse(websocket, TRY_AGAIN_LATER, f"no free stream: all {self.streams} are in use")
            return
        self.open_streams += 1
        answering: asyncio.Task[None] | None = None
        try:
            await websocket.send_bytes(bytes([HANDSHAKE]))
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes")
                if not data or data[0] != AUDIO:  # text frames, empty messages, unknown kinds: ignored
                    self.received["ignored"] += 1
                    continue
                if not data[1:].startswith(b"OggS"):
                    await refuse(websocket, UNSUPPORTED_DATA, "audio must be Ogg pages of Opus at 24 kHz")
                    return
                self.received["audio"] += 1
                if answering is None:
                    answering = asyncio.create_task(self._answer(websocket))
        except WebSocketDisconnect:
            return
        finally:
            self.open_streams -= 1
            if answering is not None:
                answering.cancel()

    async def _answer(self, websocket: WebSocket) -> None:
        await asyncio.sleep(self.delay)  # the scripted model time
        pieces = list(REPLY_TEXT)
        for page in self.reply():
            await websocket.send_bytes(bytes([AUDIO]) + page)
            if pieces:
                await websocket.send_bytes(bytes([TEXT]) + pieces.pop(0).encode())
            await asyncio.sleep(FRAME_SECONDS)

    async def capacity(self, _: Request) -> Response:
        if self.capacity_answer is not None:
            return Response(json.dumps(self.capacity_answer), media_type="application/json")
        return JSONResponse({"free": self.streams - self.open_streams, "total": self.streams})

    async def set_capacity(self, request: Request) -> Response:
        self.capacity_answer = (await request.json()).get("answer")
        return JSONResponse({"answer": self.capacity_answer})

    async def die(self, _: Request) -> Response:
        os._exit(1)  # no close frames, no goodbye: the process is gone

    def app(self) -> Starlette:
        return Starlette(routes=[
            WebSocketRoute("/api/chat", self.chat),
            Route("/api/capacity", self.capacity),
            Route("/fake/capacity", self.set_capacity, methods=["POST"]),
            Route("/fake/die", self.die, methods=["POST"]),
        ])


async def refuse(websocket: WebSocket, code: int, why: str) -> None:
    await websocket.send_bytes(bytes([ERROR]) + why.encode())
    await websocket.close(code, why)


@dataclass
class ModelServerProcess:
    process: subprocess.Popen[bytes]
    url: str  # what MODEL_SERVICE_URL names

    def set_capacity_answer(self, answer: Any) -> None:
        httpx.post(f"{self.url}/fake/capacity", json={"answer": answer}, timeout=10).raise_for_status()

    def die(self) -> None:
        try:
            httpx.post(f"{self.url}/fake/die", timeout=10)
        except httpx.HTTPError:
            pass  # the answer never comes: the process is gone
        wait_until(lambda: self.process.poll() is not None, "the stand-in to exit on /fake/die", timeout=30)


@contextmanager
def model_server_process(streams: int, delay: float = 0.2) -> Iterator[ModelServerProcess]:
    """The stand-in as its own process on a free loopback port, answering once it is up."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "tests.fakes.moshi_server", "--port", str(port),
                                "--streams", str(streams), "--delay", str(delay)], cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url) or process.poll() is not None, "the model server stand-in to answer")
        assert process.poll() is None, "the model server stand-in exited at its start"
        yield ModelServerProcess(process, url)
    finally:
        terminate(process)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/capacity", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--streams", type=int, default=2, help="stream slots")
    parser.add_argument("--delay", type=float, default=0.2, help="seconds before each stream's reply")
    args = parser.parse_args()
    server = ModelServer(streams=args.streams, delay=args.delay)
    server.reply()  # encoded before serving, so the first reply's delay is the scripted one
    uvicorn.run(server.app(), host=args.host, port=args.port, log_level="warning", ws="websockets-sansio")


if __name__ == "__main__":
    main()
