"""BOT_CHANNEL_PORT: the bots' routes (/bots/…) on a port of their own, and nowhere else.

Behind an Ingress or a load balancer that forwards the public port, the bot channel (and a warm
path's identity-token-only hello) would otherwise be reachable from the internet. With a channel
port, the dispatcher listens on both; a request is told apart by the local port its connection
arrived on (the ASGI scope's `server`, set by the server from the socket, never by a header), so
the public port answers the bots' routes 404 and the channel port answers everything else 404.
A WebSocket handshake on the wrong port is closed before it is accepted, which the server answers
HTTP 403: uvicorn logs an ERROR ("returned without completing handshake") after an HTTP denial
response to a WebSocket, and anyone on the internet could fill the logs with those.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketClose

from dispatcher.errors import error_response

BOT_ROUTES_PREFIX = "/bots/"  # the channel (botchannel/contract.py CHANNEL_PATH) and a call's media socket
POLICY_VIOLATION = 1008  # RFC 6455 7.4.1: the close code of a refused WebSocket


def arrived_on(scope: Scope) -> int | None:
    """The local port of the connection the request came in on (None on a Unix socket)."""
    server = scope.get("server")
    return server[1] if server else None


class ChannelOnItsOwnPort:
    def __init__(self, app: ASGIApp, channel_port: int) -> None:
        self.app = app
        self.channel_port = channel_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            on_channel_port = arrived_on(scope) == self.channel_port
            if scope["path"].startswith(BOT_ROUTES_PREFIX) != on_channel_port:
                message = ("this port serves the bot channel only (/bots/…); the API is on the dispatcher's PORT"
                           if on_channel_port else
                           "the bot channel (/bots/…) is served on the dispatcher's BOT_CHANNEL_PORT, not this port")
                if scope["type"] == "websocket":
                    await WebSocketClose(POLICY_VIOLATION, message)(scope, receive, send)
                else:
                    await error_response(404, "not_found", message)(scope, receive, send)
                return
        await self.app(scope, receive, send)
