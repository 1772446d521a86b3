"""Refused INVITEs, in-dialog requests ignored as a stranger's, answered calls never acknowledged
(sipedge/ack_wait.py) and the requests Kamailio's front refused itself (sipedge/front_refusals.py), in the
edge's log, bounded: the first of each source and answer in a period is logged in full, the rest only
counted, and each period ends with one line of totals. A scanner's thousands of INVITEs cost a few lines,
not one each. The last minute's count (the edge's `GET /status`) is kept in one counter a second, so
reading it never waits on them."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

log = logging.getLogger("sipedge")

PERIOD_SECONDS = 60.0
LOGGED_PER_PERIOD = 20  # refusals logged in full per period, whatever their sources
RECENT_SECONDS = 60  # `last_minute()`: the refusals of the last this many whole seconds and the current one


class RefusalLog:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()  # the SIP thread counts, the event loop's timer ends periods
        self._started = clock()
        self._seen: set[tuple[str, int | str]] = set()
        self._by_status: Counter[int | str] = Counter()  # an INVITE's status, or "NOTIFY ignored"
        self.total = 0  # every refusal since the edge started
        # One count a second, for the last minute's: each slot's second, and its count then.
        self._second_of = [-1] * RECENT_SECONDS
        self._count_of = [0] * RECENT_SECONDS

    def refused(self, host: str, to_uri: str, status: int, reason: str) -> None:
        if self._first(host, status):
            # The To URI is the caller's text: repr() keeps control characters out of the log.
            log.warning("sipedge: INVITE from %s to %r refused %d: %s (more from it this period are only counted)",
                        host, to_uri[:120], status, reason)

    def ignored(self, host: str, method: str, reason: str) -> None:
        """An in-dialog request the edge acted on none of (PJSIP answered it itself), as a refusal."""
        if self._first(host, f"{method} ignored"):
            log.warning("sipedge: %s from %s ignored: %s (more from it this period are only counted)",
                        method, host, reason)

    def unacknowledged(self, host: str, seconds: float) -> None:
        """A call from `host` answered and ended for want of its ACK (sipedge/ack_wait.py), as a refusal."""
        if self._first(host, "no ACK"):
            log.warning("sipedge: a call from %s was answered and never acknowledged (no ACK within %g s): ended, its "
                        "bot stopped; an INVITE spoofed with a trunk's address, or a trunk that lost every ACK (more "
                        "from it this period are only counted)", host, seconds)

    def front_refused(self, host: str, answer: int | str, why: str) -> None:
        """A request Kamailio, in front of the workers, answered (or dropped) itself (sipedge/front_refusals.py)."""
        if self._first(host, f"front {answer}"):
            log.warning("sipedge: a request from %s refused by the front (%s): %s (more from it this period are "
                        "only counted)", host, answer, why)

    def _first(self, host: str, answer: int | str) -> bool:
        """Counts one; whether it is the first of `host` and `answer` this period to be logged."""
        second = int(self._clock())
        slot = second % RECENT_SECONDS
        with self._lock:
            self.total += 1
            self._by_status[answer] += 1
            if self._second_of[slot] != second:
                self._second_of[slot], self._count_of[slot] = second, 0
            self._count_of[slot] += 1
            first = (host, answer) not in self._seen and len(self._seen) < LOGGED_PER_PERIOD
            if first:
                self._seen.add((host, answer))
        return first

    def last_minute(self) -> int:
        """The requests refused (and ignored) over the last RECENT_SECONDS."""
        now = int(self._clock())
        with self._lock:
            return sum(count for second, count in zip(self._second_of, self._count_of, strict=True)
                       if now - second < RECENT_SECONDS)

    def end_period(self) -> None:
        with self._lock:
            counts, sources = dict(self._by_status), len(self._seen)
            seconds = self._clock() - self._started
            self._started = self._clock()
            self._seen.clear()
            self._by_status.clear()
        if counts:
            log.warning("sipedge: %d requests refused in the last %.0f s (by answer: %s), from %s sources",
                        sum(counts.values()), seconds, counts,
                        sources if sources < LOGGED_PER_PERIOD else f"{LOGGED_PER_PERIOD} or more")
