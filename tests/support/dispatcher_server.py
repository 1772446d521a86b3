"""Serve a dispatcher app on a real loopback port inside the test's event loop.

Bots dial the dispatcher's control channel (a WebSocket), so a test whose bots must be reached
needs the app on a real socket; tests still call the HTTP API in-process (ASGITransport), and
both share the app's state because they share the loop. `in_process` is both, closed in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from tests.support.quick_uvicorn import QuickServer


@asynccontextmanager
async def serving(app: FastAPI, port: int = 0) -> AsyncIterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))  # port 0 (the default): never collides with another test or engineer
    port = sock.getsockname()[1]
    server = QuickServer(uvicorn.Config(app, lifespan="off", ws="websockets-sansio", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    started = asyncio.Event()

    async def watch() -> None:
        while not server.started and not task.done():
            await asyncio.sleep(0.005)  # uvicorn offers no started event; this only polls a flag
        started.set()

    watcher = asyncio.create_task(watch())
    await asyncio.wait_for(started.wait(), 30)
    await watcher
    if task.done():
        task.result()  # surfaces the start-up error
    access = app.state.voicefleet.channel_access
    if access is not None:
        access.bind("127.0.0.1", port)
    try:
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


@dataclass
class InProcess:
    app: FastAPI
    client: httpx.AsyncClient  # the HTTP API, called in-process
    port: int | None  # where the bots' channel listens; None when not served

    @property
    def state(self) -> Any:
        return self.app.state.voicefleet


@asynccontextmanager
async def in_process(
    app: FastAPI, *, served: bool = True, base_url: str = "http://127.0.0.1", **client: Any
) -> AsyncIterator[InProcess]:
    """The app's API in-process and (`served`) its channel on a loopback port; on the way out the
    client, then the app's state (local bots stopped), then the server are closed."""
    async with contextlib.AsyncExitStack() as stack:
        port = await stack.enter_async_context(serving(app)) if served else None
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url, **client)
        stack.push_async_callback(app.state.voicefleet.aclose)
        stack.push_async_callback(http.aclose)
        yield InProcess(app, http, port)
