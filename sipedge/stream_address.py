"""Where an outbound call's stream connects: always the edge's own `dispatcher_url`, the dispatcher it
trusts with its calls (docs/sip.md#outbound-calls).

The dispatcher hands over the stream's path (`/ws/exotel/{token}`), joined here to `dispatcher_url`.
An older dispatcher hands a whole URL, built from the Host its client named: it is taken only at
`dispatcher_url`'s own origin, else a key's holder would choose where the callee's audio and the
session's one-time token go."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

STREAM_PATH = r"^/ws/exotel/[A-Za-z0-9_.\-]{1,4000}$"  # the call token's alphabet: base64url and a dot
SECURE = {"https": "https", "wss": "https", "http": "http", "ws": "http"}
DEFAULT_PORTS = {"https": 443, "http": 80}


class NotAtDispatcher(ValueError):
    """A stream URL at another origin than the edge's dispatcher: refused, naming the origins only
    (the URL itself holds the token)."""


def stream_at(dispatcher_url: str, path: str) -> str:
    """The WebSocket URL of `path` at `dispatcher_url` (`https://` → `wss://`, `http://` → `ws://`)."""
    scheme, _, rest = dispatcher_url.rstrip("/").partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{path}"


def origin(url: str) -> tuple[str, str, int] | None:
    """(http or https, host, port) of an http(s) or ws(s) URL; None for any other, or one with credentials."""
    try:
        parts = urlsplit(url)
        scheme = SECURE.get(parts.scheme.lower())
        port = parts.port
    except ValueError:
        return None
    if scheme is None or not parts.hostname or parts.username is not None:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def origin_text(url: str) -> str:
    found = origin(url)
    return "an unreadable address" if found is None else f"{found[0]}://{found[1]}:{found[2]}"


def own_stream(dispatcher_url: str, stream_url: str) -> str:
    """An older dispatcher's whole `stream_url`, as the path it names joined to `dispatcher_url`;
    `NotAtDispatcher` unless it is at that origin and names a call's stream."""
    mine = origin(dispatcher_url)
    if mine is None or origin(stream_url) != mine:
        raise NotAtDispatcher(f"the call's stream_url is at {origin_text(stream_url)}, not this edge's dispatcher_url "
                              f"({origin_text(dispatcher_url)}): the edge opens streams at its own dispatcher only. "
                              "Upgrade the dispatcher (it hands over `stream_path`), or point the edge's "
                              "dispatcher_url at the dispatcher that hands it calls")
    parts = urlsplit(stream_url)  # readable: its origin was
    if parts.query or parts.fragment or not re.fullmatch(STREAM_PATH, parts.path):
        raise NotAtDispatcher("the call's stream_url names no call's stream (/ws/exotel/{token})")
    return stream_at(dispatcher_url, parts.path)
