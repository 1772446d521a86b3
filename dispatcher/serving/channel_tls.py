"""The bot channel's port over TLS (`wss://`), the public port as it was.

uvicorn gives every socket it serves its one `ssl` setting, but the public PORT sits behind an Ingress
or load balancer that terminates the clients' TLS, while the channel's port (BOT_CHANNEL_PORT) is
dialled by the bots directly, inside the cluster. So the server serves its plain sockets as uvicorn
does, then the channel's socket with the certificate, through the same protocol factory: one app,
one set of connection bounds, the port told apart as before (dispatcher/api/channel_port.py). A
connection counts against MAX_CONNECTIONS from its accept, its handshake included, and a handshake
is the first to be closed for room, as a plain connection that has sent no request is.

The certificate and key are read once, at start: a renewed certificate (a new Secret's files) is
served by the next replica a rollout starts (docs/kubernetes.md, "The channel's TLS").
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from typing import Any

from dispatcher.serving.draining import DrainingServer
from dispatcher.settings import SettingsError

HANDSHAKE_SECONDS = 10.0  # when the protocol names no header timeout of its own


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server's TLS context with the certificate chain and key; a bad file is one line naming its setting."""
    for name, path in (("BOT_CHANNEL_TLS_CERT_FILE", cert_file), ("BOT_CHANNEL_TLS_KEY_FILE", key_file)):
        if not os.path.isfile(path):
            raise SettingsError(f"{name}: no file at {path}: mount the channel's certificate Secret there, or "
                                "unset both BOT_CHANNEL_TLS_* for a plain channel")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError) as exc:
        raise SettingsError(f"BOT_CHANNEL_TLS_CERT_FILE={cert_file} and BOT_CHANNEL_TLS_KEY_FILE={key_file} are not "
                            f"a PEM certificate chain and its private key ({getattr(exc, 'reason', None) or exc})"
                            ) from None
    return context


class ChannelTlsServer(DrainingServer):
    """A DrainingServer that serves `tls_socket` with `context` and its other sockets plain."""

    def __init__(self, *args: Any, tls_socket: socket.socket, context: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tls_socket = tls_socket
        self._context = context
        # The channel's connections whose handshake runs, oldest first: open descriptors the app's
        # protocol does not see yet, so counted here against MAX_CONNECTIONS.
        self.handshaking: dict[_Handshake, None] = {}
        self._upgrades: set[asyncio.Task[None]] = set()  # strong references: a task nobody holds may vanish

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        plain = [sock for sock in sockets or [] if sock is not self._tls_socket]
        await super().startup(sockets=plain)
        if self.should_exit:
            return
        # Accepted plain, then upgraded (asyncio's `ssl=` would hide a connection until its handshake ends,
        # so a flood of silent dials would hold descriptors the connection cap never counts).
        loop = asyncio.get_running_loop()
        self.servers.append(await loop.create_server(lambda: _Handshake(self), sock=self._tls_socket,
                                                    backlog=self.config.backlog))

    def http_protocol(self) -> Any:
        """A connection's HTTP protocol, as uvicorn's own factory makes it (uvicorn/server.py, startup)."""
        config = self.config
        return config.http_protocol_class(  # type: ignore[call-arg]
            config=config, server_state=self.server_state, app_state=self.lifespan.state)

    def handshake_seconds(self) -> float:
        """A handshake must finish within HEADER_TIMEOUT_SECONDS, as a request's head must (asyncio's
        own deadline is 60 s)."""
        return float(getattr(self.config.http_protocol_class, "header_timeout", HANDSHAKE_SECONDS))

    def room_for(self, new: _Handshake) -> bool:
        """Within MAX_CONNECTIONS counting the handshakes, or made so: the oldest other handshake goes
        first (it has sent no request yet), then what the plain port would close (server.py, `_evict`)."""
        cls = self.config.http_protocol_class
        cap = getattr(cls, "max_connections", None)
        if cap is None or len(self.server_state.connections) + len(self.handshaking) <= cap:
            return True
        oldest = next((pending for pending in self.handshaking if pending is not new), None)
        if oldest is not None:
            oldest.abort()
            return True
        return bool(cls._evict())  # type: ignore[attr-defined]

    def track(self, task: asyncio.Task[None]) -> None:
        self._upgrades.add(task)
        task.add_done_callback(self._upgrades.discard)


class _Handshake(asyncio.Protocol):
    """One channel connection from its accept to the end of its TLS handshake, then handed to the app's
    HTTP protocol (the bytes that came with the handshake's end first)."""

    def __init__(self, server: ChannelTlsServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._early = _Early()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.pause_reading()  # start_tls reads it, from the handshake's first byte
        self._server.handshaking[self] = None
        if not self._server.room_for(self):
            self.abort()  # past the cap with nothing to close: no TLS to answer a 503 in
            return
        self._server.track(asyncio.get_running_loop().create_task(self._upgrade(transport)))

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.handshaking.pop(self, None)

    def abort(self) -> None:
        self._server.handshaking.pop(self, None)
        if self._transport is not None:
            self._transport.abort()

    async def _upgrade(self, transport: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        try:
            tls = await loop.start_tls(transport, self._early, self._server._context, server_side=True,
                                       ssl_handshake_timeout=self._server.handshake_seconds())
        except (OSError, ssl.SSLError, RuntimeError):
            transport.abort()  # a failed, timed out or evicted handshake (start_tls has closed it)
            return
        except asyncio.CancelledError:  # the server's end
            transport.abort()
            raise
        finally:
            self._server.handshaking.pop(self, None)
        if tls is None or self._early.ended:
            transport.abort()
            return
        http = self._server.http_protocol()
        tls.set_protocol(http)
        http.connection_made(tls)
        for data in self._early.data:
            http.data_received(data)


class _Early(asyncio.Protocol):
    """What arrives between the handshake's end and the HTTP protocol's start (asyncio reads on at once)."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.ended = False

    def data_received(self, data: bytes) -> None:
        self.data.append(data)

    def eof_received(self) -> bool | None:
        self.ended = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
