"""Where the command finds the dispatcher and its keys: `--url` or `VOICEFLEET_URL`, and
`VOICEFLEET_ADMIN_KEY` (the admin surface's) and `VOICEFLEET_API_KEY` (a client's, for its own
sessions) from the environment only (a flag would leave a key in shell history and in every
process listing)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import ip_address
from urllib.parse import urlsplit

import click

URL_VARIABLE = "VOICEFLEET_URL"
ADMIN_KEY_VARIABLE = "VOICEFLEET_ADMIN_KEY"
API_KEY_VARIABLE = "VOICEFLEET_API_KEY"  # a client key (DISPATCHER_API_KEYS): what callers start sessions with
DEFAULT_URL = "http://127.0.0.1:8080"  # a local `uv run python -m dispatcher`
DEFAULT_TIMEOUT = 10.0
KEY_TEXT = re.compile(r"[\x20-\x7e]*")  # what a header value carries as it is: printable ASCII


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
    if not is_address(chosen):
        source = "--url" if url else URL_VARIABLE
        raise click.UsageError(f"{source} must be the dispatcher's address, such as {DEFAULT_URL} or "
                               f"https://voice.example.com, not {chosen!r}")
    return Target(chosen, key_in(env, ADMIN_KEY_VARIABLE), timeout, api_key(env))


def is_address(url: str) -> bool:
    """http(s), a host without spaces, and a port (if any) from 1 to 65535."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port out of range or not a number
    except ValueError:  # an unclosed IPv6 bracket, too
        return False
    host = parts.hostname or ""
    return parts.scheme in ("http", "https") and bool(host) and " " not in host and port != 0


def api_key(env: Mapping[str, str]) -> str | None:
    """The client key callers start sessions with (`voicefleet loadtest`): the environment only, as the
    admin key. None: a local keyless dispatcher."""
    return key_in(env, API_KEY_VARIABLE)


def key_in(env: Mapping[str, str], variable: str) -> str | None:
    """The key `variable` holds (None: unset). One with a line break or a control character inside is
    refused, never quoted: it is no header value, and the HTTP client's refusal of one repeats the whole header."""
    key = (env.get(variable) or "").strip()
    if not KEY_TEXT.fullmatch(key):
        raise click.UsageError(f"{variable} holds more than a key (a line break, or a character beyond "
                               "printable ASCII, inside it): set it to the key alone")
    return key or None


def cleartext_warning(target: Target) -> str | None:
    """A sentence when the key sent (the admin's, else the client's) would cross a network in the clear:
    plain http to anything but this machine. A warning, not a refusal: a private network may be trusted."""
    if target.admin_key is not None:
        return key_in_clear(target.url, ADMIN_KEY_VARIABLE)
    return None if target.api_key is None else key_in_clear(target.url, API_KEY_VARIABLE)


def key_in_clear(url: str, variable: str) -> str | None:
    """The warning for the key in `variable` sent to `url`, when that is plain http off this machine."""
    parts = urlsplit(url)
    if parts.scheme != "http" or is_loopback(parts.hostname or ""):
        return None
    return f"warning: {variable} goes to {parts.hostname} unencrypted (http://): use the dispatcher's https:// address"


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback address: this machine."""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False
