"""The bot channel's port over TLS (`wss://`), the public port as it was.

uvicorn gives every socket it serves its one `ssl` setting, but the public PORT sits behind an Ingress
or load balancer that terminates the clients' TLS, while the channel's port (BOT_CHANNEL_PORT) is
dialled by the bots directly, inside the cluster. So the server serves its plain sockets as uvicorn
does, then the channel's socket with the certificate, through the same protocol factory: one app,
one set of connection bounds, the port told apart as before (dispatcher/api/channel_port.py).

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

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        plain = [sock for sock in sockets or [] if sock is not self._tls_socket]
        await super().startup(sockets=plain)
        if self.should_exit:
            return
        config = self.config

        def protocol() -> asyncio.Protocol:  # uvicorn's own factory's arguments (uvicorn/server.py, startup)
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state)

        # A handshake must finish within HEADER_TIMEOUT_SECONDS, as a request's head must: the connection
        # cap counts a connection only once its handshake is done (asyncio's own deadline is 60 s).
        handshake = float(getattr(config.http_protocol_class, "header_timeout", HANDSHAKE_SECONDS))
        loop = asyncio.get_running_loop()
        self.servers.append(await loop.create_server(protocol, sock=self._tls_socket, ssl=self._context,
                                                     backlog=config.backlog, ssl_handshake_timeout=handshake))
