"""Where the command finds the dispatcher and its admin key: `--url` or `VOICEFLEET_URL`, and
`VOICEFLEET_ADMIN_KEY` from the environment only (a flag would leave the key in shell history and
in every process listing)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import ip_address
from urllib.parse import urlsplit

import click

URL_VARIABLE = "VOICEFLEET_URL"
ADMIN_KEY_VARIABLE = "VOICEFLEET_ADMIN_KEY"
DEFAULT_URL = "http://127.0.0.1:8080"  # a local `uv run python -m dispatcher`
DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Target:
    url: str  # without a trailing slash
    admin_key: str | None  # None: a local keyless dispatcher, which lets its one local caller in
    timeout: float


def target(env: Mapping[str, str], url: str | None, timeout: float) -> Target:
    """The dispatcher to call: `--url` over `VOICEFLEET_URL` over the local default."""
    chosen = (url or env.get(URL_VARIABLE) or DEFAULT_URL).strip().rstrip("/")
    parts = urlsplit(chosen)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        source = "--url" if url else URL_VARIABLE if env.get(URL_VARIABLE) else "the URL"
        raise click.UsageError(f"{source} must be the dispatcher's address, such as {DEFAULT_URL} or "
                               f"https://voice.example.com, not {chosen!r}")
    key = (env.get(ADMIN_KEY_VARIABLE) or "").strip() or None
    return Target(chosen, key, timeout)


def cleartext_warning(target: Target) -> str | None:
    """A sentence when the admin key would cross a network in the clear: plain http to anything but
    this machine. A warning, not a refusal: a private network may be trusted with it."""
    parts = urlsplit(target.url)
    if target.admin_key is None or parts.scheme != "http" or _is_loopback(parts.hostname or ""):
        return None
    return (f"warning: {ADMIN_KEY_VARIABLE} goes to {parts.hostname} unencrypted (http://): "
            "use the dispatcher's https:// address")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False
