"""How many `GET /usage` queries run at once at this replica: one per key; `MAX_AT_ONCE` client keys'
in all, and `ADMIN_AT_ONCE` more kept for admin keys.

A query reads every field of each day it spans, whoever asks (a day's hash holds every key's sums),
one script call a day: 400 days of full days hold the store about a second. Unbounded, one client key
at its read rate could keep the store, which every replica's starts wait on, busy all the time; so a
key waits for its own query's answer before it asks again, and the replica runs a few at once. Client
keys holding every slot of theirs never keep an admin's billing read out: it has its own (or a free
client slot)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dispatcher.errors import ApiError

MAX_AT_ONCE = 2
ADMIN_AT_ONCE = 1
RETRY_SECONDS = 2.0


class UsageQuerySlots:
    def __init__(self, at_once: int = MAX_AT_ONCE, admin_at_once: int = ADMIN_AT_ONCE) -> None:
        self._at_once = at_once
        self._admin_at_once = admin_at_once
        self._running: dict[str, bool] = {}  # who → whether it holds an admin's slot

    @contextmanager
    def taken(self, who: str, *, admin: bool = False) -> Iterator[None]:
        """One query's slot for `who` (a key's id), or 429 naming what to do. `admin`: an admin key's,
        which takes a slot kept for admins when the client keys' are all taken."""
        if who in self._running:
            raise ApiError(429, "usage_query_running", "this key's previous GET /usage is still being answered: "
                           "wait for its answer, then ask again", retry_after=RETRY_SECONDS)
        admins = sum(self._running.values())
        clients_free = len(self._running) - admins < self._at_once
        if not clients_free and not (admin and admins < self._admin_at_once):
            raise ApiError(429, "usage_busy", f"{self._at_once} GET /usage queries are being answered here: "
                           "try again in a moment, or ask for fewer days", retry_after=RETRY_SECONDS)
        self._running[who] = not clients_free  # an admin in a client's free slot leaves the admins' for another
        try:
            yield
        finally:
            del self._running[who]
