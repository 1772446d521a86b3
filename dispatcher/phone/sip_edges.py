"""A region's SIP edges as the dispatcher reaches them: `SIP_EDGE_URL`, one control API or several,
comma-separated, each presenting the same `SIP_EDGE_SECRET` (docs/sip.md#outbound-calls).

One client each. An edge whose connection was refused (nothing listens: it is down or restarting) is
tried last for SKIP_SECONDS, logged once until it answers again; nothing else marks it, since an edge that
answered late or not at all may hold the call (dispatcher/phone/trunk_calls.py says why that matters).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from dispatcher.outbound.http_client import HttpClient, HttpError, HttpResponse
from dispatcher.settings import SettingsError

log = logging.getLogger("dispatcher.phone")

SKIP_SECONDS = 10.0  # how long an edge that refused a connection is tried after the others


def edge_urls(value: str) -> tuple[str, ...]:
    """`SIP_EDGE_URL`'s edges, each `http(s)://host[:port]`, or a `SettingsError` naming the bad one."""
    urls = tuple(url.strip().rstrip("/") for url in value.split(","))
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password \
                or parts.path or parts.query or parts.fragment:
            raise SettingsError(f"SIP_EDGE_URL: {url[:80]!r} is not an edge's control API: give each edge as "
                                "http(s)://host:port (its control_port), several separated by commas")
    if len(set(urls)) != len(urls):
        raise SettingsError("SIP_EDGE_URL names an edge twice: list each edge's control API once")
    return urls


def connection_refused(exc: BaseException) -> bool:
    """Whether a failed request provably never reached the edge: no connection was made (refused, no such
    host, a TLS handshake that failed), so nothing was sent. A timeout or a reset may have delivered it."""
    cause = exc.__cause__ if isinstance(exc, HttpError) else exc
    return isinstance(cause, aiohttp.ClientConnectorError)


class SipEdges:
    def __init__(self, urls: tuple[str, ...], secret: str, *, timeout: float, max_answer_bytes: int) -> None:
        self.urls = urls
        self._clients = {url: HttpClient(url, timeout=timeout, follow_redirects=False,
                                         max_answer_bytes=max_answer_bytes,
                                         headers={"Authorization": f"Bearer {secret}"}) for url in urls}
        self._down_until: dict[str, float] = {}

    def client(self, url: str) -> HttpClient:
        return self._clients[url]

    def in_turn(self) -> Iterator[str]:
        """The edges in their listed order, those that refused a connection lately last."""
        now = time.monotonic()
        yield from sorted(self.urls, key=lambda url: self._down_until.get(url, 0.0) > now)

    def refused(self, url: str) -> None:
        if url not in self._down_until:  # once, until it answers again
            log.warning("SIP edge %s refused a connection: the other edges are tried first for %.0f s",
                        url, SKIP_SECONDS)
        self._down_until[url] = time.monotonic() + SKIP_SECONDS

    def answered(self, url: str) -> None:
        self._down_until.pop(url, None)

    def holding(self, named: object) -> str | None:
        """The edge a call's stream named as its own, if it is one of these; with one edge, that one."""
        if isinstance(named, str) and named.rstrip("/") in self._clients:
            return named.rstrip("/")
        return self.urls[0] if len(self.urls) == 1 else None

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()


def json_of(answer: HttpResponse) -> Any:
    """An edge's answer as JSON; None when it is not."""
    try:
        return answer.json()
    except ValueError:
        return None
