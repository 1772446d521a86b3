"""Hostile review of the control API's bearer check (sipedge/control_auth.py), shared by every listener of the
edge's control API (one-process edge, its front, each worker's port): a caller without the secret gets 401,
whatever bytes its Authorization header holds."""

from __future__ import annotations

import asyncio

from aiohttp import web

from sipedge.control_auth import control_app

SECRET = "edge-control-secret-for-the-tests-0123456789"


async def _answered(request: bytes) -> bytes:
    async def served(_: web.Request) -> web.Response:
        return web.json_response({"served": True})

    runner = web.AppRunner(control_app(SECRET, served, served, served, served), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        reader, writer = await asyncio.open_connection("127.0.0.1", runner.addresses[0][1])
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=30)
        writer.close()
        return answer
    finally:
        await runner.cleanup()


async def test_a_bearer_that_is_not_utf8_is_refused_401_not_500() -> None:
    answer = await _answered(b"GET /status HTTP/1.1\r\nHost: edge\r\nAuthorization: Bearer \xff\xfe\r\n"
                             b"Connection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
