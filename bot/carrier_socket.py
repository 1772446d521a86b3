"""A phone call's media socket, shaped like the FastAPI WebSocket that Pipecat's runner hands a bot.

The dispatcher terminates the carrier's WebSocket and relays its frames verbatim over a socket
this bot dials (bots accept no inbound traffic): `media.attach` names the path and a one-time
secret. `CarrierSocket` wraps that client connection in the few members Pipecat reads from a
Starlette `WebSocket` — `iter_text()` (`parse_telephony_websocket` reads the carrier's first two
messages through it), `receive()`, `send_text()`/`send_bytes()`, `close()`, `client_state` and
`application_state` (`FastAPIWebsocketTransport`) — so a user's `bot(runner_args)` gets
`WebSocketRunnerArguments(websocket=...)` (bot/runner_args.py) and its own `create_transport`
detects the carrier exactly as under Pipecat's runner (bot/websocket_mode.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from starlette.websockets import WebSocketState
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from bot.channel_tls import UntrustedChannel, ca_file, channel_context

CONNECT_TIMEOUT_SECONDS = 5.0
MAX_MESSAGE_BYTES = 1024 * 1024  # a carrier's media message is a few KB; Exotel's up to 100 KB


class MediaAttachError(Exception):
    """The media socket could not be opened."""


class CarrierSocket:
    def __init__(self, connection: ClientConnection, carrier: str | None = None) -> None:
        self._connection = connection
        self.carrier = carrier
        self.client_state = WebSocketState.CONNECTED
        self.application_state = WebSocketState.CONNECTED
        self.headers: Mapping[str, str] = {}  # the carrier's upgrade headers stay at the dispatcher
        self.query_params: Mapping[str, str] = {}

    async def receive(self) -> dict[str, Any]:
        """The next message in ASGI's shape; `websocket.disconnect` once the call is over."""
        try:
            data = await self._connection.recv()
        except ConnectionClosed as exc:
            self.client_state = WebSocketState.DISCONNECTED
            return {"type": "websocket.disconnect", "code": exc.rcvd.code if exc.rcvd else 1006}
        if isinstance(data, str):
            return {"type": "websocket.receive", "text": data}
        return {"type": "websocket.receive", "bytes": bytes(data)}

    async def receive_text(self) -> str:
        message = await self.receive()
        if message["type"] == "websocket.disconnect":
            raise ConnectionError("the call's media socket closed")
        text = message.get("text")
        return text if isinstance(text, str) else bytes(message["bytes"]).decode()

    async def iter_text(self) -> AsyncIterator[str]:
        """Text messages until the socket closes (Starlette's contract: no read-ahead)."""
        while True:
            message = await self.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            yield text if isinstance(text, str) else bytes(message["bytes"]).decode()

    async def send_text(self, data: str) -> None:
        await self._send(data)

    async def send_bytes(self, data: bytes) -> None:
        await self._send(data)

    async def _send(self, data: str | bytes) -> None:
        if self.application_state == WebSocketState.DISCONNECTED:
            raise RuntimeError("the call's media socket is closed")
        try:
            await self._connection.send(data)
        except ConnectionClosed:
            self.client_state = WebSocketState.DISCONNECTED
            raise

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Hangs the call up from the bot's side: the dispatcher closes the carrier's socket."""
        self.application_state = WebSocketState.DISCONNECTED
        await self._connection.close(code, reason or "")
        self.client_state = WebSocketState.DISCONNECTED


def media_url(channel_url: str, path: str) -> str:
    """The media path on the same dispatcher address as the control channel."""
    parts = urlsplit(channel_url)
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


async def dial_media(channel_url: str, params: Mapping[str, Any]) -> CarrierSocket:
    """Opens the socket `media.attach` names (`{path, token, carrier}`)."""
    path, token, carrier = params.get("path"), params.get("token"), params.get("carrier")
    if not isinstance(path, str) or not path.startswith("/") or not isinstance(token, str):
        raise MediaAttachError("media.attach needs a path and a token")
    url = media_url(channel_url, path)
    try:
        connection = await connect(
            url,
            ssl=channel_context(url, ca_file()),  # the channel's own trust (bot/channel_tls.py)
            additional_headers={"Authorization": f"Bearer {token}"},
            open_timeout=CONNECT_TIMEOUT_SECONDS,
            proxy=None,
            compression=None,  # base64 audio does not deflate; compressing costs CPU per frame
            max_size=MAX_MESSAGE_BYTES,
            ping_interval=None,  # media flows every 20 ms; the control channel has the pings
            close_timeout=2,
        )
    except InvalidStatus as exc:
        raise MediaAttachError(f"the dispatcher refused the media socket (HTTP {exc.response.status_code})") from None
    except UntrustedChannel as exc:
        raise MediaAttachError(str(exc)) from None
    except (OSError, TimeoutError, WebSocketException) as exc:
        raise MediaAttachError(f"cannot open the media socket: {type(exc).__name__}: {exc}") from None
    return CarrierSocket(connection, carrier if isinstance(carrier, str) else None)

