"""A webhook receiver on loopback: a real aiohttp server whose `POST /hooks` (or any method's, with
`method="*"`, or another `path`: a peer region's endpoint) runs the test's handler."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from tests.support.ports import free_port


@contextlib.asynccontextmanager
async def hook_receiver(hook: Callable[[web.Request], Awaitable[web.Response]],
                        method: str = "POST", path: str = "/hooks") -> AsyncIterator[str]:
    """Serves `hook` until the block ends; yields its URL."""
    app = web.Application()
    app.router.add_route(method, path, hook)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        await runner.cleanup()
