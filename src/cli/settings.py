"""Where the command finds the dispatcher and its keys: `--url` or `VOICEFLEET_URL`, and
`VOICEFLEET_ADMIN_KEY` (the admin surface's) and `VOICEFLEET_API_KEY` (a client's, for its own
sessions) from the environment only (a flag would leave a key in shell history and in every
process listing)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import ip_address
from urllib.parse import urlsplit

import click

URL_VARIABLE = "VOICEFLEET_URL"
ADMIN_KEY_VARIABLE = "VOICEFLEET_ADMIN_KEY"
API_KEY_VARIABLE = "VOICEFLEET_API_KEY"
DEFAULT_URL = "http://127.0.0.1:8080"  # a local `uv run python -m dispatcher`
DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Target:
    url: str  # without a trailing slash
    # None: a local keyless dispatcher, which lets its one local caller in. Never in a repr (a traceback's
    # locals, a debug print).
    admin_key: str | None = field(repr=False)
    timeout: float
    api_key: str | None = field(default=None, repr=False)  # a client's key: its own sessions


def target(env: Mapping[str, str], url: str | None, timeout: float) -> Target:
    """The dispatcher to call: `--url` over `VOICEFLEET_URL` over the local default."""
    chosen = (url or env.get(URL_VARIABLE) or DEFAULT_URL).strip().rstrip("/")
    if not _is_address(chosen):
        source = "--url" if url else URL_VARIABLE
        raise click.UsageError(f"{source} must be the dispatcher's address, such as {DEFAULT_URL} or "
                               f"https://voice.example.com, not {chosen!r}")
    key = (env.get(ADMIN_KEY_VARIABLE) or "").strip() or None
    return Target(chosen, key, timeout, (env.get(API_KEY_VARIABLE) or "").strip() or None)


def _is_address(url: str) -> bool:
    """http(s), a host without spaces, and a port (if any) from 1 to 65535."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port out of range or not a number
    except ValueError:  # an unclosed IPv6 bracket, too
        return False
    host = parts.hostname or ""
    return parts.scheme in ("http", "https") and bool(host) and " " not in host and port != 0


def cleartext_warning(target: Target) -> str | None:
    """A sentence when the admin key would cross a network in the clear: plain http to anything but
    this machine. A warning, not a refusal: a private network may be trusted with it."""
    parts = urlsplit(target.url)
    variable = ADMIN_KEY_VARIABLE if target.admin_key is not None else API_KEY_VARIABLE
    if (target.admin_key or target.api_key) is None or parts.scheme != "http" or _is_loopback(parts.hostname or ""):
        return None
    return (f"warning: {variable} goes to {parts.hostname} unencrypted (http://): "
            "use the dispatcher's https:// address")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False
