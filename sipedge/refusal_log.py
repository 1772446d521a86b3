"""Refused INVITEs in the edge's log, bounded: the first of each source and answer in a period is
logged in full, the rest only counted, and each period ends with one line of totals. A scanner's
thousands of INVITEs cost a few lines, not one each."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

log = logging.getLogger("sipedge")

PERIOD_SECONDS = 60.0
LOGGED_PER_PERIOD = 20  # refusals logged in full per period, whatever their sources


class RefusalLog:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()  # the SIP thread counts, the event loop's timer ends periods
        self._started = clock()
        self._seen: set[tuple[str, int]] = set()
        self._by_status: Counter[int] = Counter()
        self.total = 0  # every refusal since the edge started

    def refused(self, host: str, to_uri: str, status: int, reason: str) -> None:
        with self._lock:
            self.total += 1
            self._by_status[status] += 1
            first = (host, status) not in self._seen and len(self._seen) < LOGGED_PER_PERIOD
            if first:
                self._seen.add((host, status))
        if first:
            # The To URI is the caller's text: repr() keeps control characters out of the log.
            log.warning("sipedge: INVITE from %s to %r refused %d: %s (more from it this period are only counted)",
                        host, to_uri[:120], status, reason)

    def end_period(self) -> None:
        with self._lock:
            counts, sources = dict(self._by_status), len(self._seen)
            seconds = self._clock() - self._started
            self._started = self._clock()
            self._seen.clear()
            self._by_status.clear()
        if counts:
            log.warning("sipedge: %d INVITEs refused in the last %.0f s (by answer: %s), from %s sources",
                        sum(counts.values()), seconds, counts,
                        sources if sources < LOGGED_PER_PERIOD else f"{LOGGED_PER_PERIOD} or more")
