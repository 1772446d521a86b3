"""SIP edge records owed: calls this replica started or placed while the store did not answer, their edge known
(an inbound start's credential's, the edge a call was handed to) but not recorded (docs/sip.md#edge-credentials).

Each is kept here (its session, the record it would have had, until when it would have lasted) and written once
the store answers again, by `run` (the app's lifespan owns it) with backoff, never past the record's life: then
the edge's reports on the call are taken as a recorded call's are, at any replica. The write is the one a record
always gets (`first_read_back`, first write wins): a session recorded meanwhile at another edge keeps that record,
and the owed one is logged and forgotten. Until it is written, a report on the session at this replica is taken
for the edge owed (`settle` writes it first if the store answers now); at another replica it is refused as an
unrecorded call's is. The list is bounded (MOST): past it the oldest owed is dropped, counted. It lives in this
replica's memory alone: a replica that stops loses its owed records. A relayed call's record of the region that
relayed its start (dispatcher/phone/relayed_starts.py) is owed the same way, under its own `Kind`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from dispatcher.phone.edge_record import edge_of, record_key, same_hand_over
from dispatcher.store.coordination import FirstClaims
from dispatcher.store.first_read_back import first_read_back
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.phone")

DROPPED_LOG_SECONDS = 60.0  # records dropped past MOST are logged once in this long (an outage drops many)
MOST = 10_000  # records owed at once: a long outage at a busy replica is bounded, its oldest dropped first
FIRST_DELAY = 0.5  # seconds before the store is asked again after it did not answer, doubling…
MOST_DELAY = 10.0  # …up to this, each wait drawn from its upper half (replicas back from one blink spread out)
OUTCOMES = ("written", "other_edge", "expired", "dropped")


@dataclass(frozen=True)
class Kind:
    """What is owed: its store key for a session, its metrics' name, and its name in the log."""

    key: Callable[[str], str]
    metric: str
    what: str


SIP_EDGE = Kind(record_key, "voicefleet_sip_edge_records_owed", "SIP edge record")


@dataclass(frozen=True)
class Owed:
    url: str  # the edge the call came in at or was handed to
    value: str  # the record as it would have been written (`<url> <token>`)
    until: float  # monotonic: when the record would have expired; it is not written past it


class OwedEdgeRecords:
    def __init__(self, records: FirstClaims, *, registry: CollectorRegistry | None = None, most: int = MOST,
                 clock: Callable[[], float] = time.monotonic, kind: Kind = SIP_EDGE) -> None:
        self._records = records
        self._kind = kind
        self._most = most
        self._clock = clock
        self._owed: dict[str, Owed] = {}  # in the order owed: the oldest first
        self._waiting = asyncio.Event()  # set while any is owed
        self._dropped_logged = -math.inf
        registry = registry if registry is not None else CollectorRegistry()
        self._gauge = Gauge(kind.metric, f"{kind.what}s this replica owes the store: calls started or placed while "
                            "it did not answer, written once it does.", registry=registry)
        self._settled = Counter(f"{kind.metric}_settled", f"{kind.what}s owed and settled: written, kept as another "
                                "record found first, expired unwritten, or dropped past the list's bound.", ["outcome"],
                                registry=registry)
        for outcome in OUTCOMES:
            self._settled.labels(outcome)

    def owe(self, session_id: str, url: str, value: str, seconds: float) -> None:
        """`value` is owed as `session_id`'s record for `seconds` from now (replacing one this replica owed it)."""
        if self._owed.pop(session_id, None) is None and len(self._owed) >= self._most:
            oldest = next(iter(self._owed))
            del self._owed[oldest]
            self._settled.labels("dropped").inc()
            if self._clock() - self._dropped_logged >= DROPPED_LOG_SECONDS:
                self._dropped_logged = self._clock()
                log.warning("%s of session %s dropped unwritten: %d are owed here at once, as many as are kept (its "
                            "edge's reports on it are refused; all dropped are counted in "
                            "%s_settled_total{outcome=\"dropped\"})", self._kind.what, oldest, self._most,
                            self._kind.metric)
        self._owed[session_id] = Owed(url, value, self._clock() + seconds)
        self._changed()

    def forget(self, session_id: str, value: str) -> None:
        """The owed `value` is no longer the session's (its hand-over's edge placed nothing): not written."""
        owed = self._owed.get(session_id)
        if owed is not None and owed.value == value:
            del self._owed[session_id]
            self._changed()

    def owed(self, session_id: str) -> str | None:
        """The edge `session_id`'s record is owed to here, None when none is (or it expired)."""
        owed = self._owed.get(session_id)
        return owed.url if owed is not None and owed.until > self._clock() else None

    async def settle(self, session_id: str) -> str:
        """The edge holding `session_id`'s call, which is owed here (`owed`): the store's record once the owed one
        is written (or found naming another edge), else the edge owed while the store does not answer. One write,
        not read back: a report waits one store call at most (a reply lost is `run`'s to read back)."""
        owed = self._owed[session_id]
        try:
            return await self._write(session_id, owed, once=True)
        except StoreUnavailable:
            return owed.url

    async def run(self) -> None:
        """Writes what is owed while the store answers, waiting FIRST_DELAY doubling to MOST_DELAY while it does
        not; until cancelled (the app's lifespan)."""
        delay = FIRST_DELAY
        while True:
            await self._waiting.wait()
            try:
                while self._owed:
                    session_id, owed = next(iter(self._owed.items()))
                    await self._write(session_id, owed)
                delay = FIRST_DELAY
            except StoreUnavailable:
                await asyncio.sleep(random.uniform(delay / 2, delay))  # noqa: S311 - a spread, not a secret
                delay = min(delay * 2, MOST_DELAY)
            except Exception:  # a fault of this code's: the owed records stay, the task lives on
                log.exception("%ss owed: writing them failed; trying again in %.0f s", self._kind.what, MOST_DELAY)
                await asyncio.sleep(MOST_DELAY)
            self._changed()

    async def _write(self, session_id: str, owed: Owed, *, once: bool = False) -> str:
        """Writes `owed` (first write wins; `once`: a single try, else `first_read_back`'s) and forgets it: the edge
        the store records. Raises StoreUnavailable."""
        left = owed.until - self._clock()
        if left <= 0:
            self._done(session_id, owed, "expired")
            return owed.url
        key = self._kind.key(session_id)
        written = await (self._records.first(key, owed.value, left) if once
                         else first_read_back(self._records, key, owed.value, left))
        if same_hand_over(written, owed.value):  # an edge of this hand-over that placed nothing: the call is owed's
            await self._records.let_go(key, written)
            written = await self._records.first(key, owed.value, left)
        if self._owed.get(session_id) is not owed and written == owed.value:
            # Forgotten (a refused start) or owed anew (the hand-over's next edge) while this write was in flight.
            await self._records.let_go(key, written)
            return owed.url
        holder = edge_of(written)
        if holder != owed.url:
            log.warning("session %s's %s was written naming %s while its record at %s was owed here: that record "
                        "is kept, so %s's word on it is taken and %s's is not", session_id, self._kind.what,
                        holder[:80], owed.url, holder[:80], owed.url)
        self._done(session_id, owed, "written" if holder == owed.url else "other_edge")
        return holder

    async def last_pass(self, seconds: float) -> None:
        """At shutdown: one bounded try at what is owed (the store may answer again while `run` waits in its
        backoff), then a warning naming how many records are lost with this replica."""
        try:
            async with asyncio.timeout(seconds):
                for session_id, owed in list(self._owed.items()):
                    await self._write(session_id, owed, once=True)
        except (StoreUnavailable, TimeoutError):
            pass
        if self._owed:
            log.warning("%d %ss owed are lost with this replica's stop: the store did not take them within %.0f s; "
                        "their edges' reports on those calls are refused (docs/sip.md#edge-credentials)",
                        len(self._owed), self._kind.what, seconds)

    def _done(self, session_id: str, owed: Owed, outcome: str) -> None:
        if self._owed.get(session_id) is owed:  # not one owed again since (a hand-over's next edge)
            del self._owed[session_id]
            self._settled.labels(outcome).inc()
            self._changed()

    def _changed(self) -> None:
        self._gauge.set(len(self._owed))
        if self._owed:
            self._waiting.set()
        else:
            self._waiting.clear()
