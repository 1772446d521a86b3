"""A connection upgraded to a WebSocket leaves nothing of its HTTP side behind once it closes. Its loss reaches
the WebSocket's protocol, never the HTTP protocol's connection_lost: the server's tiers of connections that may
make room kept that protocol (with its transport and parser, 8 KB) for each WebSocket ever accepted, and out of
them its parser's callbacks made it a cycle that only a full collection freed, hours apart in a dispatcher. The
collector is off here: only counted references free it. A real server on a loopback port, a real client."""

from __future__ import annotations

import asyncio
import socket
import weakref
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import connect

from dispatcher.serving.server import BoundedHttpProtocol, uvicorn_config
from tests.support.collector import collector_off
from tests.support.quick_uvicorn import QuickServer
from tests.support.waiting import until


async def echo(scope: dict[str, Any], receive: Callable[[], Any], send: Callable[[dict[str, Any]], Any]) -> None:
    """A WebSocket that echoes each text frame until its client goes."""
    assert scope["type"] == "websocket"
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": message["text"]})


async def test_a_closed_websockets_http_protocol_is_freed_without_a_collection() -> None:
    config = uvicorn_config(echo, keep_alive_seconds=5, header_timeout_seconds=10, log_level="warning")
    config.lifespan = "off"
    opened: weakref.WeakSet[BoundedHttpProtocol] = weakref.WeakSet()
    made: list[int] = []

    class Watched(config.http):  # type: ignore[misc,name-defined]
        def connection_made(self, transport: asyncio.Transport) -> None:
            opened.add(self)
            made.append(id(self))
            super().connection_made(transport)

    config.http = Watched
    server = QuickServer(config)
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        await until(lambda: server.started, "the server listening")
        with collector_off():
            async with connect(f"ws://127.0.0.1:{listening.getsockname()[1]}/", compression=None) as ws:
                await ws.send("hello")
                assert await ws.recv() == "hello"
            await until(lambda: not server.server_state.connections, "the server seeing the WebSocket close")
            await asyncio.sleep(0)
            assert len(made) == 1 and len(opened) == 0, "the WebSocket's HTTP protocol outlived it"
            assert not any(Watched._tiers), "a WebSocket's connection stayed among those that may make room"
    finally:
        server.should_exit = True
        await serving
        listening.close()
