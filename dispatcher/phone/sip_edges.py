"""A region's SIP edges as the dispatcher reaches them: `SIP_EDGE_URL`, one control API or several,
comma-separated, each presenting the same `SIP_EDGE_SECRET` (docs/sip.md#outbound-calls).

One client each, its connection bounded by CONNECT_SECONDS apart from the answer's wait: a host that is
gone (its address drops the connection attempt, as a stopped cloud instance's does) costs a second, not
the request's whole timeout. An edge that provably got nothing (its connection refused or never made) or
that timed out is tried last for SKIP_SECONDS, logged once until it answers again. An edge that answered
late or not at all may hold the call (dispatcher/phone/trunk_calls.py says why that matters), so the
session stays bound to it (`bind`) while the other sessions go elsewhere first.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from dispatcher.outbound.http_client import HttpClient, HttpError, HttpResponse
from dispatcher.settings import SettingsError

log = logging.getLogger("dispatcher.phone")

SKIP_SECONDS = 10.0  # how long an edge that refused a connection (or timed out) is tried after the others
CONNECT_SECONDS = 1.0  # an edge is on the region's private network: a connection takes milliseconds
BOUND_SESSIONS = 1000  # sessions an edge may hold after a timeout; a retry comes within seconds
EDGE_URL = re.compile(r"https?://[^\s/]+")  # the edge's own check of the name it is told (sipedge/control.py)


def edge_urls(value: str) -> tuple[str, ...]:
    """`SIP_EDGE_URL`'s edges, each `http(s)://host[:port]` (its scheme lower-cased, as the edge expects the
    name it is told), or a `SettingsError` naming the bad one."""
    urls = tuple(_edge_url(url.strip().rstrip("/")) for url in value.split(","))
    if len(set(urls)) != len(urls):
        raise SettingsError("SIP_EDGE_URL names an edge twice: list each edge's control API once")
    return urls


def _edge_url(url: str) -> str:
    parts = urlsplit(url)
    named = f"{parts.scheme}://{parts.netloc}"
    # What urlsplit drops (a bare `?` or `#`) or the edge refuses (a space) is refused here, not at each call.
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password \
            or named.lower() != url.lower() or not EDGE_URL.fullmatch(named):
        raise SettingsError(f"SIP_EDGE_URL: {url[:80]!r} is not an edge's control API: give each edge as "
                            "http(s)://host:port (its control_port), several separated by commas")
    if parts.scheme == "http" and _public(parts.hostname):
        raise SettingsError(f"SIP_EDGE_URL: {named!r} is plain HTTP to a public address, which would carry "
                            "SIP_EDGE_SECRET across the internet: give the edge's private address (its "
                            "control_address on the region's private network), or https:// through a TLS proxy "
                            "in front of it (docs/security.md)")
    return named


def _public(host: str) -> bool:
    """Whether `host` is an address of the public internet; a name is not resolved here (an internal name is
    the usual case, and a private network's DNS is the operator's to keep)."""
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        return False


def nothing_sent(exc: BaseException) -> bool:
    """Whether a failed request provably never reached the edge: no connection was made (refused, no such
    host, a TLS handshake that failed, or not made within the connect timeout), so nothing was sent. A
    timeout past the connection, or a reset, may have delivered it."""
    cause = exc.__cause__ if isinstance(exc, HttpError) else exc
    return isinstance(cause, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError))


def timed_out(exc: BaseException) -> bool:
    """Whether a request that may have reached the edge went unanswered in time."""
    cause = exc.__cause__ if isinstance(exc, HttpError) else exc
    return isinstance(cause, TimeoutError) and not nothing_sent(exc)


class SipEdges:
    def __init__(self, urls: tuple[str, ...], secret: str, *, timeout: float, max_answer_bytes: int) -> None:
        self.urls = urls
        self._clients = {url: HttpClient(url, timeout=timeout, connect_timeout=CONNECT_SECONDS,
                                         follow_redirects=False, max_answer_bytes=max_answer_bytes,
                                         headers={"Authorization": f"Bearer {secret}"}) for url in urls}
        self._down_until: dict[str, float] = {}
        self._bound: OrderedDict[str, str] = OrderedDict()  # session -> the edge that may hold its call
        self._took: OrderedDict[str, str] = OrderedDict()  # session -> the edge that took its call

    def client(self, url: str) -> HttpClient:
        return self._clients[url]

    def in_turn(self, session_id: str | None = None) -> Iterator[str]:
        """The edges in their listed order, those that failed lately last; for a session an edge may hold
        (`bind`), that edge alone."""
        if session_id is not None and (bound := self._bound.get(session_id)) is not None:
            yield bound
            return
        now = time.monotonic()
        yield from sorted(self.urls, key=lambda url: self._down_until.get(url, 0.0) > now)

    def bind(self, session_id: str, url: str) -> None:
        """`session_id`'s call may be at `url` (its request went unanswered): its retries go there alone."""
        _remember(self._bound, session_id, url)

    def took(self, session_id: str, url: str) -> None:
        _remember(self._took, session_id, url)

    def took_call(self, session_id: str) -> str | None:
        """The edge that took `session_id`'s call from this replica, if it did (its stream may say otherwise)."""
        return self._took.get(session_id)

    def failed(self, url: str, exc: BaseException) -> None:
        """A request to `url` got no answer: after a connection not made or a timeout, the other sessions'
        requests go to the other edges first for SKIP_SECONDS (a reset alone does not say it is away)."""
        cause = exc.__cause__ if isinstance(exc, HttpError) else exc
        if isinstance(cause, aiohttp.ClientConnectorError):
            self._push_back(url, "refused a connection")
        elif isinstance(cause, aiohttp.ConnectionTimeoutError):
            self._push_back(url, f"took no connection within {CONNECT_SECONDS:.0f} s")
        elif timed_out(exc):
            self._push_back(url, "did not answer in time")

    def _push_back(self, url: str, why: str) -> None:
        if url not in self._down_until:  # once, until it answers again
            log.warning("SIP edge %s %s: the other edges are tried first for %.0f s", url, why, SKIP_SECONDS)
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


def _remember(sessions: OrderedDict[str, str], session_id: str, url: str) -> None:
    """The latest BOUND_SESSIONS sessions' edges: a session's call and its retries come within minutes."""
    sessions[session_id] = url
    sessions.move_to_end(session_id)
    while len(sessions) > BOUND_SESSIONS:
        sessions.popitem(last=False)


def json_of(answer: HttpResponse) -> Any:
    """An edge's answer as JSON; None when it is not."""
    try:
        return answer.json()
    except ValueError:
        return None
