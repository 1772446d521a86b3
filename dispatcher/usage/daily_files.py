"""The daily usage files (dispatcher/usage/day_file.py) written to the team's bucket as sessions end.

Every `every` seconds each replica rewrites today's file and yesterday's (a session ended just
before midnight is added to its day a few seconds later) as a whole, from the shared rollups, so a
file is never appended to: no replica can lose or double another's rows. Two things keep replicas
from undoing each other:

- a lease per day in the coordination store: one replica writes a day at a time, the others skip it;
- the digest of what was last written, kept beside the lease: an unchanged day is not written again,
  and a write that was lost (a crash between the rollups' read and the store's answer, a put that
  timed out) leaves the digest as it was, so the next round, at any replica, writes the day again.

An object store's put replaces the object whole (S3, Cloud Storage, Azure Blob; the folder store
writes beside and renames), so a reader sees the old file or the new one, never half of one. Each put
has a timeout and a few tries; before each try the writer renews its lease, and gives up when it has
lost it (it was paused past the lease: the holder now writes newer sums).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from dispatcher.artifacts.store import ArtifactStore, StoreError
from dispatcher.store.client import Store, StoreUnavailable
from dispatcher.store.leases import Leases, milliseconds
from dispatcher.usage.day_file import CONTENT_TYPE, day_csv, day_key
from dispatcher.usage.rollups import Rollups

log = logging.getLogger("dispatcher.usage")

PUT_TIMEOUT_SECONDS = 30.0
PUT_TRIES = 3
RETRY_SECONDS = (1.0, 4.0)  # between tries
LEASE_SECONDS = PUT_TRIES * PUT_TIMEOUT_SECONDS + sum(RETRY_SECONDS) + 30.0  # a read, every try, and a margin
DIGEST_SECONDS = 3 * 86_400  # a day's digest outlives the two days it is written in
Clock = Callable[[], datetime]


class DayMarks(Protocol):
    """Who writes a day now (a lease), and the digest of what was last written for it."""

    async def take(self, day: date) -> bool: ...
    async def holding(self, day: date) -> bool: ...
    async def release(self, day: date) -> None: ...
    async def written(self, day: date) -> str | None: ...
    async def mark(self, day: date, digest: str) -> None: ...


class StoreDayMarks:
    """The replicas' shared marks, in the coordination store."""

    def __init__(self, store: Store) -> None:
        self._store, self._leases = store, Leases(store)
        self._holder = f"{store.replica_id}:{secrets.token_hex(4)}"

    def _key(self, day: date, what: str) -> str:
        return self._store.key("usage", "file", what, day.isoformat())

    async def take(self, day: date) -> bool:
        return await self._leases.take(self._key(day, "lease"), self._holder, LEASE_SECONDS) == self._holder

    async def holding(self, day: date) -> bool:
        return await self._leases.renew(self._key(day, "lease"), self._holder, LEASE_SECONDS)

    async def release(self, day: date) -> None:
        await self._leases.release(self._key(day, "lease"), self._holder)

    async def written(self, day: date) -> str | None:
        value = await self._store.call(lambda: self._store.redis.get(self._key(day, "digest")))
        return None if value is None else str(value)

    async def mark(self, day: date, digest: str) -> None:
        key = self._key(day, "digest")
        await self._store.call(lambda: self._store.redis.set(key, digest, px=milliseconds(DIGEST_SECONDS)))


class MemoryDayMarks:
    """One process's marks (no store: one replica)."""

    def __init__(self) -> None:
        self._held: set[date] = set()
        self._digests: dict[date, str] = {}

    async def take(self, day: date) -> bool:
        if day in self._held:
            return False
        self._held.add(day)
        return True

    async def holding(self, day: date) -> bool:
        return day in self._held

    async def release(self, day: date) -> None:
        self._held.discard(day)

    async def written(self, day: date) -> str | None:
        return self._digests.get(day)

    async def mark(self, day: date, digest: str) -> None:
        self._digests = {d: v for d, v in self._digests.items() if d >= day - timedelta(days=3)}
        self._digests[day] = digest


class UsageFiles:
    def __init__(self, rollups: Rollups, store: ArtifactStore, marks: DayMarks, every: float,
                 clock: Clock = lambda: datetime.now(UTC), put_timeout: float = PUT_TIMEOUT_SECONDS,
                 own_store: bool = False, region: str = "") -> None:
        self._rollups, self.store, self._marks = rollups, store, marks
        self._every, self._clock, self._put_timeout = every, clock, put_timeout
        self._own_store = own_store  # not the recordings': checked at start, closed here
        self._region = region  # several regions: each writes its own sums, under its own name

    async def run(self) -> None:
        """Until cancelled: today's and yesterday's files, every `every` seconds (jittered, so replicas
        started together do not all ask at once)."""
        if self._own_store:
            try:
                await self.store.check()
            except StoreError as exc:  # said now; each round tries again, and says so
                log.warning("USAGE_FILES=%s cannot be written: %s", self.store.where, _why(exc))
        while True:
            await self.write_due()
            await asyncio.sleep(self._every * random.uniform(0.8, 1.2))  # noqa: S311 (not a secret)

    async def write_due(self) -> None:
        today = self._clock().date()
        for day in (today - timedelta(days=1), today):
            try:
                await self.write_day(day)
            except (StoreUnavailable, StoreError, TimeoutError) as exc:  # the next round tries again
                log.warning("usage file %s: not written: %s", day.isoformat(), _why(exc))

    async def write_day(self, day: date) -> bool:
        """Writes the day's file when it changed and no other replica is writing it; whether it wrote."""
        if not await self._marks.take(day):
            return False
        try:
            body = day_csv(await self._rollups.grouped(day, day, "key", None))
            digest = hashlib.sha256(body).hexdigest()
            if await self._marks.written(day) == digest:
                return False
            if not await self._put(day, body):
                return False
            await self._marks.mark(day, digest)
            return True
        finally:
            with contextlib.suppress(StoreUnavailable):  # it runs out by itself
                await self._marks.release(day)

    async def _put(self, day: date, body: bytes) -> bool:
        key = day_key(self.store.prefix, day, self._region)
        for attempt in range(PUT_TRIES):
            if not await self._marks.holding(day):
                log.warning("usage file %s: its lease ran out before it was written; another replica writes it",
                            day.isoformat())
                return False
            try:
                await _within(self._put_timeout, self.store.put(key, body, CONTENT_TYPE))
                return True
            except (StoreError, TimeoutError) as exc:
                if attempt + 1 == PUT_TRIES:
                    raise
                log.warning("usage file %s: try %d of %d failed (%s); trying again", day.isoformat(), attempt + 1,
                            PUT_TRIES, _why(exc))
                await asyncio.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
        return False


    async def aclose(self) -> None:
        """Closes a store of its own that holds a connection pool (Cloud Storage's, Azure Blob's)."""
        close = getattr(self.store, "aclose", None)
        if self._own_store and close is not None:
            await close()


async def _within(seconds: float, call: Awaitable[None]) -> None:
    async with asyncio.timeout(seconds):
        await call


def _why(exc: BaseException) -> str:
    if isinstance(exc, StoreError):  # the store's own words may name an account: the log's, never a client's
        return f"{exc.reason}: {exc}"
    return "no answer in time" if isinstance(exc, TimeoutError) else str(exc)
