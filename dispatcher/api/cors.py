"""Which browser origins may call the API, and what a refused one is told.

`CORS_ALLOW_ORIGINS` lists them, in the cloud and locally. A local dispatcher also allows the
loopback origins of any port: a project's own web client on its dev server (Vite's
`http://localhost:5173`) calls it as it calls Pipecat's development runner, which allows every
origin. Only loopback ones here: a page of any other site would otherwise start bots on the
developer's machine with the developer's keys (DNS rebinding reaches loopback with the attacker's
origin, which this does not allow).

A preflight from an origin that is not allowed is answered `403 cors_origin_not_allowed` naming the
setting that allows it, and logged: without it the browser shows only a CORS error and the log
only `OPTIONS … 405`.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from dispatcher.api.cross_site import CrossSiteWrites
from dispatcher.api.origins import LOOPBACK_ORIGIN, MAX_ORIGIN_CHARS, AllowedOrigins, allowed_origins, refusal
from dispatcher.errors import error_response
from dispatcher.observability.log_text import shown

log = logging.getLogger(__name__)


def allow_origins(app: FastAPI, origins: tuple[str, ...], local: bool) -> None:
    """The CORS answers, then (outside them) the refusal of any other origin's writes and preflights."""
    loopback = LOOPBACK_ORIGIN if local else None
    if origins or loopback:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(origins),
            allow_origin_regex=loopback,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            # A page may read where its session lives and when to retry.
            expose_headers=["Location", "Retry-After"],
            max_age=600,
        )
    allowed = allowed_origins(origins, local)
    app.add_middleware(CrossSiteWrites, allowed=allowed)  # refuses only origins that get no CORS answer
    app.add_middleware(RefusedOrigins, allowed=allowed)


class RefusedOrigins:
    def __init__(self, app: ASGIApp, allowed: AllowedOrigins) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = dict(scope.get("headers", []))
            origin = headers.get(b"origin", b"").decode("latin-1")
            if origin and b"access-control-request-method" in headers and not self.allowed.listed(origin):
                message = refusal(shown(origin, MAX_ORIGIN_CHARS))
                log.warning("a browser page was refused (CORS): %s", message)
                await error_response(403, "cors_origin_not_allowed", message)(scope, receive, send)
                return
        await self.app(scope, receive, send)

