"""ICE settings for the webrtc transport, from the environment. Imports nothing heavy.

- `VOICEFLEET_ICE_CONFIG`: the session's ICE configuration as JSON, in the shape of the client's
  `iceConfig` (an `RTCConfiguration` subset): `{"iceServers": [{"urls", "username",
  "credential"}], "iceTransportPolicy": "relay"|"all"}`. The dispatcher puts the bot's own
  short-lived TURN credentials there (dispatcher/media/turn.py); `relay` makes the bot gather relay
  candidates only, so it needs no reachable address of its own. Holds a credential: environment
  (or the control channel) only, never a flag, never logged.
- `BOT_ICE_SERVERS`: comma-separated STUN/TURN URLs without credentials (e.g.
  `stun:stun.example.org:3478`); default none, which is right on one host or a flat network.
- `BOT_TURN_TRANSPORT=tcp`: keep only the TURN URLs over TCP or TLS (`?transport=tcp`, `turns:`),
  in their order. For a bot that can send no UDP (a Cloud Run job's: the stack sets it there):
  aiortc uses the first TURN URL it is given and no other, and the relay's list starts with UDP.
- `VOICEFLEET_ICE_LOOPBACK=1`: gather only 127.0.0.1. aioice never offers loopback candidates, so
  on a machine whose only interface is `lo` (some sandboxes/CI runners) ICE has nothing to pair.
  Off by default; set it in both the bot and the test client (tests/support/webrtc_client.py
  honours the same variable).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from voicefleet_settings.read import setting_bool, setting_choice, setting_list, setting_text

LOOPBACK_VARIABLE = "VOICEFLEET_ICE_LOOPBACK"
CONFIG_VARIABLE = "VOICEFLEET_ICE_CONFIG"
TURN_TRANSPORT_VARIABLE = "BOT_TURN_TRANSPORT"


@dataclass(frozen=True)
class IceServerSettings:
    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class IceSettings:
    servers: tuple[IceServerSettings, ...] = ()
    relay_only: bool = False

    @property
    def has_turn(self) -> bool:
        return any(url.startswith(("turn:", "turns:")) for server in self.servers for url in server.urls)


def ice_settings(env: Mapping[str, str]) -> IceSettings:
    """Raises ValueError naming the variable; the message never quotes a credential."""
    servers = [IceServerSettings(urls=(url,)) for url in ice_server_urls(env)]
    relay_only = False
    raw = setting_text(env, CONFIG_VARIABLE)
    if raw:
        try:
            config = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{CONFIG_VARIABLE} is not valid JSON ({exc.msg} at position {exc.pos})") from None
        if not isinstance(config, dict) or not isinstance(config.get("iceServers", []), list):
            raise ValueError(f'{CONFIG_VARIABLE} must be an object like {{"iceServers": [...]}}')
        servers.extend(_server(entry) for entry in config.get("iceServers", []))
        policy = config.get("iceTransportPolicy", "all")
        if policy not in ("all", "relay"):
            raise ValueError(f'{CONFIG_VARIABLE}: iceTransportPolicy must be "all" or "relay"')
        relay_only = policy == "relay"
    transport = setting_choice(env, TURN_TRANSPORT_VARIABLE)  # "tcp" or "" (unset)
    if transport == "tcp":
        servers = [replace(s, urls=kept) for s in servers if (kept := tuple(u for u in s.urls if _over_tcp(u)))]
    settings = IceSettings(servers=tuple(servers), relay_only=relay_only)
    if transport == "tcp" and not settings.has_turn:
        raise ValueError(f"{TURN_TRANSPORT_VARIABLE}=tcp: no turn: URL with ?transport=tcp nor turns: URL to use")
    if relay_only and not settings.has_turn:
        raise ValueError(f'{CONFIG_VARIABLE}: iceTransportPolicy "relay" needs a turn: or turns: URL')
    return settings


def _over_tcp(url: str) -> bool:
    return url.startswith("turns:") or (url.startswith("turn:") and "transport=tcp" in url.lower())


def _server(entry: Any) -> IceServerSettings:
    if not isinstance(entry, dict):
        raise ValueError(f"{CONFIG_VARIABLE}: each of iceServers must be an object")
    urls = entry.get("urls")
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) and u for u in urls):
        raise ValueError(f"{CONFIG_VARIABLE}: iceServers[].urls must be a URL or a list of URLs")
    username, credential = entry.get("username"), entry.get("credential")
    if not isinstance(username, str | None) or not isinstance(credential, str | None):
        raise ValueError(f"{CONFIG_VARIABLE}: iceServers[].username and .credential must be strings")
    return IceServerSettings(urls=tuple(urls), username=username, credential=credential)


def ice_server_urls(env: Mapping[str, str]) -> list[str]:
    return list(setting_list(env, "BOT_ICE_SERVERS"))


def loopback_requested(env: Mapping[str, str]) -> bool:
    return setting_bool(env, LOOPBACK_VARIABLE)


def use_loopback_candidates() -> None:
    """Makes aioice gather 127.0.0.1 only (it skips loopback by design)."""
    import aioice.ice

    def loopback_only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return ["127.0.0.1"] if use_ipv4 else []

    aioice.ice.get_host_addresses = loopback_only
