"""How many `GET /usage` queries run at once at this replica: one per key, `MAX_AT_ONCE` in all.

A query reads every field of each day it spans, whoever asks (a day's hash holds every key's sums),
one script call a day: 400 days of full days hold the store about a second. Unbounded, one client key
at its read rate could keep the store, which every replica's starts wait on, busy all the time; so a
key waits for its own query's answer before it asks again, and the replica runs a few at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dispatcher.errors import ApiError

MAX_AT_ONCE = 2
RETRY_SECONDS = 2.0


class UsageQuerySlots:
    def __init__(self, at_once: int = MAX_AT_ONCE) -> None:
        self._at_once = at_once
        self._running: set[str] = set()

    @contextmanager
    def taken(self, who: str) -> Iterator[None]:
        """One query's slot for `who` (a key's id), or 429 naming what to do."""
        if who in self._running:
            raise ApiError(429, "usage_query_running", "this key's previous GET /usage is still being answered: "
                           "wait for its answer, then ask again", retry_after=RETRY_SECONDS)
        if len(self._running) >= self._at_once:
            raise ApiError(429, "usage_busy", f"{self._at_once} GET /usage queries are being answered here: "
                           "try again in a moment, or ask for fewer days", retry_after=RETRY_SECONDS)
        self._running.add(who)
        try:
            yield
        finally:
            self._running.discard(who)
