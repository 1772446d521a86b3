"""What every control API of the edge shares (sipedge/control.py, sipedge/control_front.py): its
routes, its error answers, and the control secret each request presents (`Authorization: Bearer`,
compared in constant time)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

MAX_BODY_BYTES = 8192
Handler = Callable[[web.Request], Awaitable[web.Response]]


def control_app(secret: str, trunks: Handler, calls: Handler, transfer: Handler, status: Handler) -> web.Application:
    """`GET /trunks`, `POST /calls`, `POST /calls/{session_id}/transfer` and `GET /status`, each for `secret`
    alone."""
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[authenticated(secret)])
    app.router.add_get("/status", status)
    app.router.add_get("/trunks", trunks)
    app.router.add_post("/calls", calls)
    app.router.add_post("/calls/{session_id}/transfer", transfer)
    return app


def error(status: int, code: str, message: str, retry_after: int | None = None) -> web.Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


def authenticated(secret: str) -> Any:
    """An aiohttp middleware answering 401 to a request without `secret`."""
    expected = secret.encode()

    @web.middleware
    async def check(request: web.Request, handler: Any) -> web.StreamResponse:
        given = request.headers.get("Authorization", "")
        # aiohttp decodes header bytes with surrogateescape: encoding them back the same way compares the
        # bytes the caller sent, where a plain encode() would raise on a non-UTF-8 byte (a 500, not a 401)
        token = given.removeprefix("Bearer ").encode("utf-8", "surrogateescape") if given.startswith("Bearer ") \
            else b""
        if not hmac.compare_digest(token, expected):
            return error(401, "unauthorized", "present the edge's control secret as `Authorization: Bearer` "
                         "(the key derived for this edge from the dispatcher's SIP_EDGE_SECRET)")
        response: web.StreamResponse = await handler(request)
        return response

    return check
