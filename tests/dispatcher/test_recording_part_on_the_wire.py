"""A recording's part put to a local folder store passes the server's own cap on a message's size on
the wire, which otherwise holds every request to about 8 × MAX_REQUEST_BYTES: a longer local call's
parts (up to 5 MiB each) were refused there with a plain 413 before any route saw them."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import uvicorn

from botchannel.recording import MIN_PART_BYTES
from dispatcher.artifacts.settings import ArtifactSettings
from dispatcher.serving.server import uvicorn_config

TAKEN: list[int] = []  # the bodies the app read whole


async def counting(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Takes the whole body and answers its length (the part route streams it the same way)."""
    if scope["type"] != "http":
        return
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return  # the server refused the message meanwhile
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    TAKEN.append(size)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": str(size).encode()})


async def put_part(max_part_bytes: int) -> int | None:
    """The answer's status, or None when the server closed the connection while the part was still sent."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn_config(counting, keep_alive_seconds=5, header_timeout_seconds=30, log_level="warning",
                            max_body_bytes=65536, max_part_bytes=max_part_bytes)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient(timeout=60) as client:
            try:
                answer = await client.put(f"http://127.0.0.1:{sock.getsockname()[1]}/recordings/part",
                                          content=b"\0" * MIN_PART_BYTES)
            except httpx.TransportError:  # refused mid-body: a client may see the reset before the 413
                return None
            return answer.status_code
    finally:
        server.should_exit = True
        await serving


async def test_a_full_part_reaches_the_app_when_the_dispatcher_takes_parts() -> None:
    TAKEN.clear()
    assert await put_part(MIN_PART_BYTES) == 200
    assert TAKEN == [MIN_PART_BYTES]


async def test_without_parts_to_take_the_server_keeps_its_tighter_cap() -> None:
    TAKEN.clear()
    assert await put_part(0) in (413, None)
    assert TAKEN == []


def test_the_dispatcher_takes_parts_when_it_records_into_its_own_folder(tmp_path: Path) -> None:
    from dispatcher.__main__ import _parts_taken

    def artifacts(recording: str, destination: str) -> SimpleNamespace:
        settings = ArtifactSettings.from_env({"RECORDING": recording, "RECORDING_DESTINATION": destination})
        local = object() if "://" not in destination else None
        return SimpleNamespace(settings=settings, local=local)

    assert _parts_taken(artifacts("on", str(tmp_path))) == MIN_PART_BYTES  # type: ignore[arg-type]
    assert _parts_taken(artifacts("off", str(tmp_path))) == 0  # type: ignore[arg-type]
    assert _parts_taken(artifacts("on", "s3://team-calls/voice")) == 0  # type: ignore[arg-type]
    assert _parts_taken(None) == 0
