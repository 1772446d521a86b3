"""Which browser origins may call the API (`CORS_ALLOW_ORIGINS`, and loopback ones locally), and
what a page of any other origin is told."""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_ORIGIN_CHARS = 200  # as logged and echoed: an origin is a scheme, a host and a port
LOOPBACK_ORIGIN = r"http://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?"


@dataclass(frozen=True)
class AllowedOrigins:
    origins: frozenset[str]
    loopback: re.Pattern[str] | None  # a local dispatcher's: `http://localhost:<any port>`

    def listed(self, origin: str) -> bool:
        return origin in self.origins or (self.loopback is not None and self.loopback.fullmatch(origin) is not None)


def allowed_origins(listed: tuple[str, ...], local: bool) -> AllowedOrigins:
    """`CORS_ALLOW_ORIGINS`, and on a local dispatcher any loopback page (a dev server's)."""
    return AllowedOrigins(frozenset(listed), re.compile(LOOPBACK_ORIGIN) if local else None)


def is_own_origin(origin: str, host_header: str) -> bool:
    """A page the dispatcher served itself: its origin names the host (and port) the request went
    to. The scheme is not compared, a load balancer ending TLS makes it differ from the request's."""
    scheme, sep, rest = origin.partition("://")
    host = host_header.strip().lower()
    return bool(sep and host) and scheme in ("http", "https") and rest.lower() == host


def refusal(origin: str) -> str:
    if not origin.startswith(("http://", "https://")):  # `null`: a file, a sandboxed frame
        return (f"this dispatcher does not allow browser calls from {origin}: serve the page over http(s) "
                "and list its origin in CORS_ALLOW_ORIGINS")
    return f"this dispatcher does not allow browser calls from {origin}: list it in CORS_ALLOW_ORIGINS={origin}"
