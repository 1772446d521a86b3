"""The deployment's running sessions as the provider's last list of every machine counted them, kept
for every replica's `GET /status` and charts (dispatcher/api/status_view.py).

A cloud provider's list is the deployment's whole fleet (at 100,000 machines, tens of megabytes parsed
on the event loop): each replica taking its own every few seconds multiplied that cost by the replicas
for the same answer. The replica that lists writes the counts here, with when it listed and how long
the list took; the others answer from it while it is fresh. One short JSON value under one key, with
a lease: the commands are ones the stack's store user already holds (SET, GET).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import Any

from dispatcher.store.client import Store

log = logging.getLogger("dispatcher.store.sessions_census")

KEPT_SECONDS = 120.0  # older than any freshness asked of it: gone rather than read stale
MAX_BYTES = 1_000_000  # counts by status and release: a value this long is not ours
LONGEST_LIST_SECONDS = 15.0  # a list's time is read no longer than GET /status waits for one
AHEAD_SECONDS = 5.0  # a census dated further ahead of this replica's clock is not believed


@dataclass(frozen=True)
class Census:
    at: float  # epoch seconds the list was asked for
    took: float  # seconds the list took (how dear another one would be)
    sessions: dict[str, Any]  # GET /status's `sessions`
    machines: int  # every active machine counted (callers' and evals'): what runs and costs
    whole: bool  # the deployment's (True) or this replica's alone

    def age(self, now: float) -> float:
        return max(0.0, now - self.at)


class LocalCensus:
    """One process: its own last census."""

    def __init__(self) -> None:
        self._kept: Census | None = None

    async def write(self, census: Census) -> None:
        self._kept = census

    async def read(self, now: float) -> Census | None:
        kept = self._kept
        return kept if kept is not None and kept.at <= now + AHEAD_SECONDS and kept.age(now) < KEPT_SECONDS else None


class StoreCensus:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._key = store.key("sessions-census", "1")  # the value's shape, versioned

    async def write(self, census: Census) -> None:
        """Raises `StoreUnavailable`."""
        value = json.dumps(asdict(census), separators=(",", ":"))
        await self._store.call(lambda: self._store.redis.set(self._key, value, px=int(KEPT_SECONDS * 1000)))

    async def read(self, now: float) -> Census | None:
        """The last census any replica wrote, or None (none kept, or a value that is not one: dated past
        `now`, epoch seconds, by more than AHEAD_SECONDS). Raises `StoreUnavailable`."""
        value = await self._store.call(lambda: self._store.redis.get(self._key))
        return _census(value, now)


def _census(value: Any, now: float) -> Census | None:
    if value is None or len(value) > MAX_BYTES:
        return None
    try:
        raw = json.loads(value)
        census = Census(at=float(raw["at"]), took=min(max(0.0, float(raw["took"])), LONGEST_LIST_SECONDS),
                        sessions=dict(raw["sessions"]), machines=int(raw["machines"]), whole=bool(raw["whole"]))
    except (ValueError, TypeError, KeyError) as exc:
        log.info("the sessions' census kept in the store is not one (%s): counted again", type(exc).__name__)
        return None
    return census if census.at <= now + AHEAD_SECONDS else None
