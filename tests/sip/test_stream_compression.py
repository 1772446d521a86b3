"""The call's stream goes uncompressed even where the other end would take permessage-deflate: audio in
base64 hardly deflates, and every frame would be deflated and inflated on the edge's event loop."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestServer
from websockets.asyncio.client import ClientConnection

from sipedge.dispatcher_link import CallToken, DispatcherLink


async def test_the_edge_offers_no_compression_to_a_stream_that_would_take_it() -> None:
    offered: list[str | None] = []

    async def stream(request: web.Request) -> web.WebSocketResponse:
        offered.append(request.headers.get("Sec-WebSocket-Extensions"))
        socket = web.WebSocketResponse(compress=True)  # would deflate, as aiohttp does unless told not to
        await socket.prepare(request)
        async for message in socket:
            await socket.send_str(message.data)
        return socket

    app = web.Application()
    app.router.add_get("/ws/exotel/{token}", stream)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    link = DispatcherLink(str(server.make_url("")).rstrip("/"))
    try:
        url = str(server.make_url("/ws/exotel/t-1")).replace("http://", "ws://")
        connection = await link.open_stream(CallToken(url, "s-1"))
        assert isinstance(connection, ClientConnection), connection
        await connection.send('{"event": "connected"}')
        assert await connection.recv() == '{"event": "connected"}'
        assert connection.protocol.extensions == []
        await connection.close()
    finally:
        await link.close()
        await server.close()
    assert offered == [None]
