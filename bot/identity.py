"""This machine's identity token, fetched fresh for each hello (botchannel/contract.py, `identity`).

The dispatcher admits a cloud bot's hello only with a token its provider signed for this very
machine, so its channel credential, readable by whoever may describe the machine, opens nothing
elsewhere (docs/security.md). Where it comes from is `BOT_IDENTITY`, set with the launch values:

- `gce`: the VM's metadata server, `instance/service-accounts/default/identity?audience=<channel
  URL>&format=full` with `Metadata-Flavor: Google` (`GCE_METADATA_HOST` overrides the host, as
  Google's client libraries read it). The VM needs a service account (the stack gives bots one).
- `fly`: the Machine's API socket, `POST /v1/tokens/oidc` on `/.fly/api` with `{"aud": <channel URL>}`;
  the answer is the token itself (https://fly.io/docs/machines/api/tokens-resource/).
- unset: none (local processes, ECS tasks).

Standard library only, in a thread: the bot's start-up does not pay for an HTTP client import. Each
call has a timeout and a few tries with backoff; when they are spent, `IdentityUnavailable` says
which server did not answer, and the bot's failure report carries it.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
from collections.abc import Mapping
from urllib.parse import quote

from botchannel.contract import IDENTITY_SOURCES, IDENTITY_VARIABLE

GCE_METADATA_HOST = "metadata.google.internal"
GCE_IDENTITY_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"
FLY_API_SOCKET = "/.fly/api"
FLY_SOCKET_VARIABLE = "BOT_FLY_API_SOCKET"  # tests point it at a fake's socket
TIMEOUT_SECONDS = 5.0
BACKOFF_SECONDS = (0.5, 1.0, 2.0)  # four tries in ~3.5 s (plus their timeouts), then the dial fails


class IdentityUnavailable(Exception):
    """The provider's identity source did not give this machine a token."""


def identity_source(env: Mapping[str, str]) -> str | None:
    """`BOT_IDENTITY` checked: one of IDENTITY_SOURCES, or None when unset."""
    source = env.get(IDENTITY_VARIABLE, "").strip() or None
    if source is not None and source not in IDENTITY_SOURCES:
        raise ValueError(f"{IDENTITY_VARIABLE} must be one of {', '.join(IDENTITY_SOURCES)}, got {source!r}")
    return source


class MachineIdentity:
    def __init__(self, source: str | None, audience: str, env: Mapping[str, str]) -> None:
        self.source, self.audience = source, audience
        self._metadata_host = env.get("GCE_METADATA_HOST", "").strip() or GCE_METADATA_HOST
        self._fly_socket = env.get(FLY_SOCKET_VARIABLE, "").strip() or FLY_API_SOCKET

    async def token(self) -> str | None:
        """A fresh token for the channel's URL, or None where the provider issues none."""
        if self.source is None:
            return None
        fetch = self._gce if self.source == "gce" else self._fly
        failure = ""
        for delay in (*BACKOFF_SECONDS, None):
            try:
                return await asyncio.to_thread(fetch)
            except (OSError, http.client.HTTPException, IdentityUnavailable) as exc:
                failure = str(exc) or type(exc).__name__
            if delay is not None:
                await asyncio.sleep(delay)
        where = (f"the metadata server ({self._metadata_host})" if self.source == "gce"
                 else f"the Machines API socket ({self._fly_socket})")
        raise IdentityUnavailable(f"no identity token from {where}: {failure}")

    def _gce(self) -> str:
        host, _, prefix = self._metadata_host.partition("/")
        path = f"/{prefix}" if prefix else ""
        query = f"?audience={quote(self.audience, safe='')}&format=full"
        connection = http.client.HTTPConnection(host, timeout=TIMEOUT_SECONDS)
        try:
            connection.request("GET", path + GCE_IDENTITY_PATH + query, headers={"Metadata-Flavor": "Google"})
            return _token(connection.getresponse())
        finally:
            connection.close()

    def _fly(self) -> str:
        connection = _UnixConnection(self._fly_socket)
        try:
            body = json.dumps({"aud": self.audience})
            connection.request("POST", "/v1/tokens/oidc", body=body, headers={"Content-Type": "application/json"})
            return _token(connection.getresponse())
        finally:
            connection.close()


def _token(response: http.client.HTTPResponse) -> str:
    text = response.read(16 * 1024).decode("ascii", errors="replace").strip()
    if response.status != 200:
        raise IdentityUnavailable(f"HTTP {response.status}")
    if text.count(".") != 2:
        raise IdentityUnavailable("the answer is not a JWT")
    return text


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket (Fly's `/.fly/api`; the host name is only the request's Host)."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=TIMEOUT_SECONDS)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)
