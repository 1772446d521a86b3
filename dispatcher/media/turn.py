"""Short-lived TURN credentials (the TURN REST scheme coturn checks with `use-auth-secret`).

    username = "<expiry>:<session id>[:<role>]"       expiry in Unix seconds
    password = base64(HMAC-SHA1(shared secret, username))

coturn recomputes the HMAC from its `static-auth-secret` and refuses an Allocate whose expiry
has passed, so no credential store is needed and a leaked password makes no new allocation once
expired. It checks the expiry only when an allocation is made: a session that outlives its
credentials keeps its relay (refreshes are authenticated with the key derived at allocation, even
after a stale nonce made the client sign again), only a *new* allocation (ICE restart, reconnect)
needs fresh ones. Hence nothing can take a credential back, and a key's unexpired ones are
bounded instead (dispatcher/media/turn_quota.py). The long-lived secret never leaves this module: it is held
as bytes outside `repr`, and only derived passwords are returned.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from dispatcher.media.ice import IceServer
from dispatcher.settings import SettingsError
from voicefleet_settings.model import INTEGER
from voicefleet_settings.read import entry, setting_choice, setting_int, setting_text

IcePolicy = Literal["relay", "all"]

DEFAULT_TTL_SECONDS = 600
# "short-lived": long enough for a cold start plus the client's join (the catalogue's bound)
MAX_TTL_SECONDS = int(entry("TURN_CREDENTIAL_TTL_SECONDS", INTEGER).maximum or 0)
MIN_SECRET_CHARACTERS = 16
DEFAULT_CREDENTIALS_PER_KEY = 20

# turn:host[:port][?transport=udp|tcp], turns:host[:port][?transport=tcp], stun:host[:port]
_URL = re.compile(
    r"^(?:(?P<turn>turns?)|stun):(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(?::(?P<port>\d{1,5}))?"
    r"(?:\?transport=(?P<transport>udp|tcp))?$"
)

# Relay peers a TURN server must refuse (coturn `denied-peer-ip`): private, shared, loopback,
# link-local (169.254.169.254 is every cloud's metadata service), benchmarking, reserved. Without
# them a TURN server inside a VPC is an open door from the internet into the VPC.
DENIED_PEER_RANGES: tuple[str, ...] = (
    "0.0.0.0-0.255.255.255",
    "10.0.0.0-10.255.255.255",
    "100.64.0.0-100.127.255.255",
    "127.0.0.0-127.255.255.255",
    "169.254.0.0-169.254.255.255",
    "172.16.0.0-172.31.255.255",
    "192.0.0.0-192.0.0.255",
    "192.168.0.0-192.168.255.255",
    "198.18.0.0-198.19.255.255",
    "240.0.0.0-255.255.255.255",
    "::1",
    "64:ff9b::-64:ff9b::ffff:ffff",
    "::ffff:0.0.0.0-::ffff:255.255.255.255",
    "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
)


@dataclass(frozen=True)
class TurnSettings:
    """`TURN_URLS`, `TURN_SHARED_SECRET`, `TURN_CREDENTIAL_TTL_SECONDS`, `ICE_TRANSPORT_POLICY`,
    `TURN_CREDENTIALS_PER_KEY`."""

    urls: tuple[str, ...]
    shared_secret: bytes = field(repr=False)
    ttl_seconds: int = DEFAULT_TTL_SECONDS
    policy: IcePolicy = "relay"  # the client's (ICE_TRANSPORT_POLICY)
    # A cloud bot accepts no inbound traffic, so it relays whatever the client does; a local bot
    # follows ICE_TRANSPORT_POLICY like its client.
    bot_policy: IcePolicy = "relay"
    # A client credential cannot be taken back, so one key holds at most this many unexpired
    # (dispatcher/media/turn_quota.py).
    credentials_per_key: int = DEFAULT_CREDENTIALS_PER_KEY

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, cloud: bool) -> TurnSettings | None:
        """None when no TURN server is configured (local sessions need none)."""
        urls = tuple(u.strip() for u in setting_text(env, "TURN_URLS").split(",") if u.strip())
        secret = setting_text(env, "TURN_SHARED_SECRET")
        if not urls:
            if secret:
                raise SettingsError("TURN_SHARED_SECRET is set but TURN_URLS is not")
            return None
        for url in urls:
            match = _URL.fullmatch(url)
            if match is None:
                raise SettingsError(f"TURN_URLS: {url!r} is not a URL like turn:turn.example.com:3478?transport=udp")
            if match["port"] is not None and not 0 < int(match["port"]) < 65536:
                raise SettingsError(f"TURN_URLS: {url!r} has no valid port")
            if match["turn"] == "turns" and match["transport"] == "udp":
                raise SettingsError(f"TURN_URLS: {url!r}: turns: runs over TLS, so over tcp")
        if not any(_URL.fullmatch(u)["turn"] for u in urls):  # type: ignore[index]
            raise SettingsError("TURN_URLS lists no turn: or turns: URL")
        if len(secret) < MIN_SECRET_CHARACTERS:
            # The value itself is never echoed, only what is wrong with it.
            raise SettingsError(
                f"TURN_SHARED_SECRET must be set to at least {MIN_SECRET_CHARACTERS} characters "
                "(the TURN server's static-auth-secret) when TURN_URLS is set"
            )
        ttl = setting_int(env, "TURN_CREDENTIAL_TTL_SECONDS")
        raw_policy = setting_choice(env, "ICE_TRANSPORT_POLICY") or ("relay" if cloud else "all")  # follows MACHINES
        policy: IcePolicy = "relay" if raw_policy == "relay" else "all"
        per_key = setting_int(env, "TURN_CREDENTIALS_PER_KEY")
        return cls(
            urls=urls,
            shared_secret=secret.encode(),
            ttl_seconds=ttl,
            policy=policy,
            bot_policy="relay" if cloud else policy,
            credentials_per_key=per_key,
        )


def turn_password(shared_secret: bytes, username: str) -> str:
    """coturn's `use-auth-secret` password for `username`."""
    return base64.b64encode(hmac.new(shared_secret, username.encode(), hashlib.sha1).digest()).decode()


class TurnCredentials:
    """Issues each peer of a session its own credentials, valid for `ttl_seconds` from now."""

    def __init__(self, settings: TurnSettings, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock

    @property
    def policy(self) -> IcePolicy:
        return self._settings.policy

    @property
    def settings(self) -> TurnSettings:
        return self._settings

    def username(self, session_id: str, role: str | None = None) -> str:
        expiry = int(self._clock()) + self._settings.ttl_seconds
        return f"{expiry}:{session_id}" + (f":{role}" if role else "")

    def ice_config(self, session_id: str, role: str | None = None) -> dict[str, Any]:
        """A JSON-ready `RTCConfiguration` subset: what `iceConfig` in the start answer holds.

        `role` tells the peers apart in the TURN server's logs and quotas (`user-quota` counts
        allocations per username): the client's username is `<expiry>:<session>`, the bot's
        `<expiry>:<session>:bot`.
        """
        username = self.username(session_id, role)
        config: dict[str, Any] = {
            "iceServers": [
                {
                    "urls": list(self._settings.urls),
                    "username": username,
                    "credential": turn_password(self._settings.shared_secret, username),
                }
            ]
        }
        policy = self._settings.bot_policy if role == "bot" else self._settings.policy
        if policy == "relay":
            config["iceTransportPolicy"] = "relay"
        return config


class TurnIceServers:
    """The `IceServers` seam (dispatcher/media/ice.py) for the start answer's `iceConfig`: the client's
    own credentials for this session, then any static servers (`ICE_SERVERS`)."""

    def __init__(self, credentials: TurnCredentials, extra: tuple[IceServer, ...] = ()) -> None:
        self._credentials = credentials
        self._extra = extra
        self.transport_policy: str | None = credentials.policy if credentials.policy == "relay" else None

    async def for_session(self, session_id: str) -> list[IceServer]:
        servers = [
            IceServer(urls=tuple(s["urls"]), username=s["username"], credential=s["credential"])
            for s in self._credentials.ice_config(session_id)["iceServers"]
        ]
        return [*servers, *self._extra]
