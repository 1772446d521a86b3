"""Keyless local mode answers requests addressed to this machine's loopback names only.

Without API keys anything that reaches the port can start bots, which the dispatcher allows only
on loopback. A web page can still reach loopback through DNS rebinding (a name of the
attacker's that resolves to 127.0.0.1), with the page's own origin, so CORS does not stop it;
its requests carry that name in `Host`. They are refused here, before any route runs.
"""

from __future__ import annotations

import ipaddress

from starlette.types import ASGIApp, Receive, Scope, Send

from dispatcher.errors import error_response

LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost", "ip6-loopback"})


def is_loopback_host(host_header: str) -> bool:
    """`localhost`, `127.0.0.1:8080`, `[::1]:8080`: a loopback name or address, with any port."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else ""
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _hostname(host_header: str) -> str:
    host = host_header.strip().lower()
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class LoopbackHostsOnly:
    """`also`: names the developer configured as this dispatcher's own (a tunnel's public name)."""

    def __init__(self, app: ASGIApp, also: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.also = frozenset(name.lower() for name in also)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), "")
            if not (is_loopback_host(host) or _hostname(host) in self.also):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})  # before accept: a 403
                    return
                await error_response(
                    400, "untrusted_host", "keyless local mode answers loopback host names only (localhost, 127.0.0.1)"
                )(scope, receive, send)
                return
        await self.app(scope, receive, send)
