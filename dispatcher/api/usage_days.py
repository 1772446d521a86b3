"""How many days of `GET /usage` a client key reads at this replica: `DAYS_PER_MINUTE`, after a first
`BURST_DAYS`, each query charged by the days it spans (a day is one store script call, whoever asks).

The query slots (dispatcher/api/usage_queries.py) bound how many run at once, not how often: two keys
asking for 400 days again as soon as answered held both slots and the store all the time. Charged
by its days, a key's longest query runs once a minute (two back to back: a table by key, then by
model) while its one-day reads pass hundreds of times. GCRA per key in this process's memory, as
the read limit; admin keys are not charged."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from dispatcher.errors import ApiError

DAYS_PER_MINUTE = 400  # the longest query's span (dispatcher/usage/rollups.py MAX_QUERY_DAYS), once a minute
BURST_DAYS = 800
MAX_KEYS = 10_000  # keys remembered before those with nothing owed are forgotten


class UsageDays:
    def __init__(self, per_minute: int = DAYS_PER_MINUTE, burst: int = BURST_DAYS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._per_minute = per_minute
        self._day_seconds = 60.0 / per_minute  # how long a day read takes to be given back
        self._ahead = burst * self._day_seconds  # how far ahead of now what a key owes may run
        self._clock = clock
        self._owed_until: dict[str, float] = {}  # key → when all it read is given back

    def charge(self, who: str, days: int) -> None:
        """Take `days` from `who`'s minute, or 429 naming when it may ask (nothing is taken then)."""
        now = self._clock()
        owed_until = max(self._owed_until.get(who, now), now) + days * self._day_seconds
        wait = owed_until - now - self._ahead
        if wait > 0:
            raise ApiError(429, "usage_days_exhausted", f"this key has read the days of GET /usage it may for now "
                           f"({self._per_minute} a minute): ask again in {math.ceil(wait)} s, or for fewer days",
                           retry_after=wait)
        if len(self._owed_until) >= MAX_KEYS:
            self._owed_until = {key: until for key, until in self._owed_until.items() if until > now}
        self._owed_until[who] = owed_until
