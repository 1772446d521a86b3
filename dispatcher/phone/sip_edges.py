"""A region's SIP edges as the dispatcher reaches them: `SIP_EDGE_URL`, one control API or several,
comma-separated, each with credentials of its own derived from `SIP_EDGE_SECRET` (docs/sip.md#edge-credentials).

One client each, its connection bounded by CONNECT_SECONDS apart from the answer's wait: a host that is
gone (its address drops the connection attempt, as a stopped cloud instance's does) costs a second, not
the request's whole timeout. An edge that provably got nothing (its connection refused or never made) or
that timed out is tried last for SKIP_SECONDS, logged once until it answers again (this replica's own
preference: nothing rides on it).

Which edge a session's call went to is recorded in the shared store before the request is sent (`claim`,
`sip-edge:<session>`, as ECS cells record a launch's cell), so that every replica sends that session's retry
to that edge alone (an edge that answered late or not at all may ring the callee: dispatcher/phone/
trunk_calls.py) and its transfers to the edge holding the call. A store that does not answer refuses the call
(503) rather than guess, unless the record cannot change where a retry goes: one edge listed, or a call
without an Idempotency-Key (no retry shares its session). An inbound call's edge is recorded at its start
(`took_inbound`), which a store that does not answer never refuses. A call that goes on unrecorded so (placed
or started) is owed its record, written once the store answers again (`OwedEdgeRecords`, this replica's). The
edge routes take an edge's report only on a call recorded at that edge, or owed its record at this replica
(`reporter`): a session without either may be a web session no edge holds, even with one edge listed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry

from dispatcher.errors import ApiError
from dispatcher.outbound.http_client import HttpClient, HttpError, HttpResponse
from dispatcher.outbound.http_failure import never_connected
from dispatcher.phone.edge_record import INBOUND, edge_of, record_key, same_hand_over
from dispatcher.phone.edge_secret import MAX_NAME_CHARS, EdgeSecret
from dispatcher.phone.owed_edge_records import OwedEdgeRecords
from dispatcher.settings import SettingsError
from dispatcher.store.coordination import FirstClaims
from dispatcher.store.first_read_back import first_read_back
from dispatcher.store.memory import ClaimsFull
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.phone")

SKIP_SECONDS = 10.0  # how long an edge that refused a connection (or timed out) is tried after the others
CONNECT_SECONDS = 1.0  # an edge is on the region's private network: a connection takes milliseconds
UNRECORDED_LOG_SECONDS = 60.0  # a call placed unrecorded (one edge, a store blink) is logged once in this long
HOLD_MARGIN = 600.0  # seconds a record outlives its call's longest life (a bridged leg's too): a late report finds it
EDGE_URL = re.compile(r"https?://[^\s/]+")  # the edge's own check of the name it is told (sipedge/control.py)


def edge_urls(value: str) -> tuple[str, ...]:
    """`SIP_EDGE_URL`'s edges, each `http(s)://host[:port]` (lower-cased, as the edge expects the name it is
    told and as a record or a stream names it), or a `SettingsError` naming the bad one."""
    urls = tuple(_edge_url(url.strip().rstrip("/")) for url in value.split(","))
    if len(set(urls)) != len(urls):
        raise SettingsError("SIP_EDGE_URL names an edge twice: list each edge's control API once")
    return urls


def _edge_url(url: str) -> str:
    parts = urlsplit(url)
    named = f"{parts.scheme}://{parts.netloc.lower()}"  # a host's case means nothing: one edge, one name
    # What urlsplit drops (a bare `?` or `#`) or the edge refuses (a space) is refused here, not at each call.
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password \
            or named.lower() != url.lower() or not EDGE_URL.fullmatch(named):
        raise SettingsError(f"SIP_EDGE_URL: {url[:80]!r} is not an edge's control API: give each edge as "
                            "http(s)://host:port (its control_port), several separated by commas")
    if len(named) > MAX_NAME_CHARS:  # an edge's credentials name its URL, and no longer one
        raise SettingsError(f"SIP_EDGE_URL: {named[:80]!r}… is {len(named)} characters, past the "
                            f"{MAX_NAME_CHARS} an edge's credentials can name: give the edge a shorter "
                            "address (its private IP address and control_port)")
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


def timed_out(exc: BaseException) -> bool:
    """Whether a request that may have reached the edge went unanswered in time."""
    cause = exc.__cause__ if isinstance(exc, HttpError) else exc
    return isinstance(cause, TimeoutError) and not never_connected(exc)


@dataclass(frozen=True)
class EdgeClaim:
    url: str  # the edge the session's call goes to
    value: str  # the record: the URL and the token of the hand-over that made it
    mine: bool  # whether this hand-over made it (else an earlier one's, at any replica: that edge may hold its call)


class SipEdges:
    def __init__(self, urls: tuple[str, ...], secret: EdgeSecret, *, timeout: float, max_answer_bytes: int,
                 records: FirstClaims, registry: CollectorRegistry | None = None) -> None:
        """`records`: the store's first claims, shared by every replica (which edge each session's call went to);
        `registry`: where the records owed are counted."""
        self.urls = urls
        self._clients = {url: HttpClient(url, timeout=timeout, connect_timeout=CONNECT_SECONDS,
                                         follow_redirects=False, max_answer_bytes=max_answer_bytes,
                                         # each edge's own control key: it speaks for this dispatcher to it alone
                                         headers={"Authorization": f"Bearer {secret.control_credential(url)}"})
                         for url in urls}
        self._down_until: dict[str, float] = {}
        self._records = records
        self.owed = OwedEdgeRecords(records, registry=registry)  # `run` by the app's lifespan
        self._unrecorded_logged = -math.inf

    def client(self, url: str) -> HttpClient:
        return self._clients[url]

    def in_turn(self) -> Iterator[str]:
        """The edges in their listed order, those that failed lately last."""
        now = time.monotonic()
        yield from sorted(self.urls, key=lambda url: self._down_until.get(url, 0.0) > now)

    async def claim(self, session_id: str, url: str, seconds: float, token: str, *, needed: bool) -> EdgeClaim:
        """Records `url` for `seconds` as the edge `session_id`'s call is sent to, before it is sent: the edge recorded
        first (by any replica, an earlier hand-over's), which the call then goes to alone. `token`: the hand-over's
        own, the same for each edge it asks: its own record read back (an edge that provably got nothing, its
        `let_go` lost to a store blink) is moved to `url`, never taken for an earlier hand-over's. 503 when the
        recorded edge is no longer listed (never another edge, which might ring the callee a second time), or
        when the store does not answer and the record is `needed` (else the call goes to `url` unrecorded)."""
        mine, key = f"{url} {token}", record_key(session_id)
        try:
            value = await first_read_back(self._records, key, mine, seconds)
            if same_hand_over(value, mine):
                await self._records.let_go(key, value)
                value = await first_read_back(self._records, key, mine, seconds)
        except StoreUnavailable as exc:
            if not needed:
                self._placed_unrecorded(session_id, exc)
                if not isinstance(exc, ClaimsFull):  # a full memory (no store) would be as full later
                    self.owed.owe(session_id, url, mine, seconds)
                return EdgeClaim(url, mine, mine=True)
            with contextlib.suppress(StoreUnavailable):  # a write that landed unseen: nothing was sent to `url`
                await self._records.let_go(key, mine)
            full = isinstance(exc, ClaimsFull)  # its records last past an hour: a retry in seconds would meet it full
            raise ApiError(503, "sip_edge_unrecorded", f"{_store_failure(exc)}, so the dispatcher cannot record "
                           "which SIP edge places this call (without it, a retry at another replica could ring the "
                           "callee twice): nothing was placed, " + ("set REDIS_URL to a shared store (replicas.md), "
                           "or place it without an Idempotency-Key" if full else "try again"),
                           retry_after=None if full else 5.0) from None
        holder = edge_of(value)
        if holder not in self._clients:
            raise ApiError(503, "sip_edge_unlisted", f"an earlier try of this call went to the SIP edge "
                           f"{holder[:80]!r}, which SIP_EDGE_URL no longer lists: it may hold the call, so no other "
                           "edge places it. List that edge in SIP_EDGE_URL again and retry with this Idempotency-Key; "
                           "a new key would place the call again and may ring the callee twice (see whether that "
                           "edge placed it first: its log names the session)", retry_after=60.0)
        return EdgeClaim(holder, value, mine=value == mine)

    def _placed_unrecorded(self, session_id: str, exc: StoreUnavailable) -> None:
        self._unrecorded(f"phone call {session_id} placed without recording its SIP edge ({_store_failure(exc)}): a "
                         "retry can go only to the edge it went to (one edge listed, or no Idempotency-Key); "
                         f"{_owed_or_not(exc)}")

    def _unrecorded(self, what: str) -> None:
        """A call the store could not record, placed or started all the same: logged once in UNRECORDED_LOG_SECONDS
        (a store that is down would otherwise log every call)."""
        now = time.monotonic()
        if now - self._unrecorded_logged >= UNRECORDED_LOG_SECONDS:
            self._unrecorded_logged = now
            log.warning("%s", what)

    async def let_go(self, session_id: str, claim: EdgeClaim) -> None:
        """The edge of this hand-over's `claim` provably placed nothing: another edge may take the call (a store that
        does not answer keeps the record, at worst sending a retry to that edge again)."""
        if claim.mine:
            self.owed.forget(session_id, claim.value)
            with contextlib.suppress(StoreUnavailable):
                await self._records.let_go(record_key(session_id), claim.value)

    async def recorded(self, session_id: str) -> str | None:
        """The listed edge `session_id`'s call was sent to (or came in at), as the store recorded it; None when
        none is (a call placed unrecorded) or the store does not answer: a transfer then goes by its stream's word."""
        try:
            holder = await self._holder(session_id)
        except StoreUnavailable:
            log.warning("phone call %s: the store did not say which SIP edge holds it; its stream's word is taken",
                        session_id)
            return None
        return holder if holder in self._clients else None

    async def reporter(self, session_id: str) -> str | None:
        """The edge recorded as holding `session_id`'s call (listed or not), for that edge's own reports on it;
        None when the store records none. A call whose record this replica owes is its owed edge's (the record
        written first when the store answers now: `OwedEdgeRecords.settle`). 503 with Retry-After when the store
        does not answer: which edge may report on the call is not guessed."""
        if self.owed.owed(session_id) is not None:
            return await self.owed.settle(session_id)
        try:
            return await self._holder(session_id)
        except StoreUnavailable as exc:
            raise ApiError(503, "sip_edge_unrecorded", f"{_store_failure(exc)}: the dispatcher cannot tell which "
                           f"SIP edge holds session {session_id}'s call, so it takes no edge's report on it now: "
                           "try again", retry_after=1.0) from None

    async def took_inbound(self, session_id: str, url: str, seconds: float) -> None:
        """Records `url` for `seconds` as the edge an inbound call's session came in at, whose reports on the call
        are then taken from it alone. The session is fresh (its key drawn at random), so no other edge's record
        is there first. A store that does not answer never refuses the start: the record is owed
        (`OwedEdgeRecords`)."""
        mine = f"{url} {INBOUND}"
        try:
            await first_read_back(self._records, record_key(session_id), mine, seconds)
        except StoreUnavailable as exc:
            self._unrecorded(f"inbound call {session_id} started without recording its SIP edge ({_store_failure(exc)})"
                             f": {_owed_or_not(exc)}")
            if not isinstance(exc, ClaimsFull):
                self.owed.owe(session_id, url, mine, seconds)

    async def forget_inbound(self, session_id: str, url: str) -> None:
        """An inbound start refused after `took_inbound` (a forged eval token): its record let go, so refused
        starts never fill a replica's memory of records and crowd out real calls."""
        await self.let_go(session_id, EdgeClaim(url, f"{url} {INBOUND}", mine=True))

    async def _holder(self, session_id: str) -> str | None:
        value = await self._records.held(record_key(session_id))
        return edge_of(value) if value is not None else None

    def failed(self, url: str, exc: BaseException) -> None:
        """A request to `url` got no answer: after a connection not made or a timeout, the other sessions'
        requests go to the other edges first for SKIP_SECONDS (a reset alone does not say it is away)."""
        import aiohttp  # loaded already: the failed request used it

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
        if isinstance(named, str) and named.rstrip("/").lower() in self._clients:
            return named.rstrip("/").lower()
        return self.urls[0] if len(self.urls) == 1 else None

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()


def _owed_or_not(exc: StoreUnavailable) -> str:
    """What becomes of the edge's reports on a call the store did not record."""
    if isinstance(exc, ClaimsFull):
        return "that edge's reports on it (its outcome, a bridged leg's minutes) are refused"
    return ("its record is written once the store answers again (until then this replica alone takes that edge's "
            "reports on it)")


def _store_failure(exc: StoreUnavailable) -> str:
    """Why the store did not record: its own words, naming REDIS_URL only where one is set."""
    if isinstance(exc, ClaimsFull):
        return f"this replica keeps the records in its memory (no REDIS_URL is set) and holds as many as it may ({exc})"
    return f"the shared store (REDIS_URL) did not record it ({exc})"


def json_of(answer: HttpResponse) -> Any:
    """An edge's answer as JSON; None when it is not."""
    try:
        return answer.json()
    except ValueError:
        return None
