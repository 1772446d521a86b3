"""ICE servers handed to WebRTC clients in the start answer (`iceConfig`, Pipecat's field).

`IceServers` is the seam: the deployment's static list (`ICE_SERVERS`) is one implementation; a
TURN service with short-lived REST credentials is another (it mints per session, so the call is
async and gets the session id). `ice_config` is the one place that shapes the answer's field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from dispatcher.settings import SettingsError

# What Pipecat's dev runner answers to `enableDefaultIceServers` when it has no servers of its own.
PIPECAT_DEFAULT_STUN = "stun:stun.l.google.com:19302"
URL_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


@dataclass(frozen=True)
class IceServer:
    """One RTCIceServer (https://www.w3.org/TR/webrtc/#rtciceserver-dictionary)."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"urls": list(self.urls)}
        if self.username is not None:
            out["username"] = self.username
        if self.credential is not None:
            out["credential"] = self.credential
        return out


class IceServers(Protocol):
    # "relay": the client should use relay candidates only (`ICE_TRANSPORT_POLICY`); None: any.
    transport_policy: str | None

    async def for_session(self, session_id: str) -> list[IceServer]:
        """The servers this session's client should use; empty when the deployment has none."""
        ...


class StaticIceServers:
    """The deployment's `ICE_SERVERS`, the same for every session."""

    transport_policy: str | None = None

    def __init__(self, servers: tuple[IceServer, ...]) -> None:
        self.servers = servers

    async def for_session(self, session_id: str) -> list[IceServer]:
        return list(self.servers)


async def ice_config(source: IceServers, session_id: str, *, defaults_requested: bool) -> dict[str, Any] | None:
    """Pipecat's `iceConfig`: the deployment's servers; failing those, Pipecat's public STUN
    server when the client asked for `enableDefaultIceServers` (as the dev runner does); else none."""
    servers = await source.for_session(session_id)
    if not servers and defaults_requested:
        servers = [IceServer(urls=(PIPECAT_DEFAULT_STUN,))]
    if not servers:
        return None
    config: dict[str, Any] = {"iceServers": [s.as_json() for s in servers]}
    if source.transport_policy == "relay":
        config["iceTransportPolicy"] = "relay"  # an RTCConfiguration field, as the client passes it on
    return config


def parse_ice_servers(raw: str) -> tuple[IceServer, ...]:
    """`ICE_SERVERS`: comma-separated `stun:`/`turn:` URLs, or a JSON list of RTCIceServer objects
    (`[{"urls": [...], "username": ..., "credential": ...}]`) for servers that need credentials."""
    raw = raw.strip()
    if not raw:
        return ()
    if not raw.startswith("["):
        return tuple(IceServer(urls=(_url(u.strip()),)) for u in raw.split(",") if u.strip())
    try:
        items = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"ICE_SERVERS is not valid JSON: {exc.msg} at position {exc.pos}") from None
    servers = []
    for item in items:
        if not isinstance(item, dict) or "urls" not in item:
            raise SettingsError('ICE_SERVERS: each entry must be an object with "urls"')
        urls = item["urls"] if isinstance(item["urls"], list) else [item["urls"]]
        extra = set(item) - {"urls", "username", "credential"}
        if extra:
            raise SettingsError(f"ICE_SERVERS: unknown key(s) {', '.join(sorted(extra))}")
        username, credential = item.get("username"), item.get("credential")
        if not all(isinstance(v, str | None) for v in (username, credential)):
            raise SettingsError("ICE_SERVERS: username and credential must be strings")
        servers.append(IceServer(tuple(_url(str(u)) for u in urls), username, credential))
    return tuple(servers)


def _url(url: str) -> str:
    if not url.startswith(URL_SCHEMES):
        raise SettingsError(f"ICE_SERVERS: {url!r} is not a stun:, stuns:, turn: or turns: URL")
    return url
