"""No web page of another origin changes anything here, whatever it sends.

A browser sends a POST with no body and no `Content-Type` to any address without asking CORS
first (`fetch(url, {method: "POST", mode: "no-cors"})`, a form). The page cannot read the answer,
but the request has done its work: on a keyless local dispatcher, reachable from the developer's
browser, it would start bots and roll releases back. So a state-changing request (POST, PUT,
PATCH, DELETE) is refused `403 origin_not_allowed` when the browser says it comes from a page of
another origin: an `Origin` that is neither this dispatcher's own nor an allowed one
(`CORS_ALLOW_ORIGINS`, loopback ones locally), or, with no `Origin`, `Sec-Fetch-Site: cross-site`
or `same-site`. Clients that are not browsers (curl, SDKs, carriers' webhooks, other regions)
send neither header and pass; an allowed page passes whatever its `Sec-Fetch-Site` (a dev server
on another loopback port is `same-site`).
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Receive, Scope, Send

from dispatcher.api.origins import MAX_ORIGIN_CHARS, AllowedOrigins, is_own_origin, refusal
from dispatcher.errors import error_response
from dispatcher.observability.log_text import shown

log = logging.getLogger(__name__)
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OTHER_SITES = frozenset({"cross-site", "same-site"})


def cross_site_refusal(headers: dict[bytes, bytes], allowed: AllowedOrigins) -> str | None:
    """Why a state-changing request with these headers is refused, or None when it may go on."""
    origin = headers.get(b"origin")
    if origin is not None:
        text = origin.decode("latin-1")
        if allowed.listed(text) or is_own_origin(text, headers.get(b"host", b"").decode("latin-1")):
            return None
        return refusal(shown(text, MAX_ORIGIN_CHARS))
    site = headers.get(b"sec-fetch-site", b"").decode("latin-1").strip().lower()
    if site in OTHER_SITES:
        return (f"this dispatcher does not take changes from a page of another site (Sec-Fetch-Site: {site}, "
                "no Origin): a page that should call it sends its Origin, listed in CORS_ALLOW_ORIGINS")
    return None


class CrossSiteWrites:
    def __init__(self, app: ASGIApp, allowed: AllowedOrigins) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in STATE_CHANGING:
            reason = cross_site_refusal(dict(scope.get("headers", [])), self.allowed)
            if reason is not None:
                log.warning("a browser page's %s %s was refused: %s", scope["method"], shown(scope["path"]), reason)
                await error_response(403, "origin_not_allowed", reason)(scope, receive, send)
                return
        await self.app(scope, receive, send)
