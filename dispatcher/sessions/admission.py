"""Admission control: at most MAX_CONCURRENT_SESSIONS sessions at once, checked atomically.

Counting the provider's active machines on every start would cost a list call per request (and
Fly allows about one per second), so the count is refreshed at most every `refresh_seconds`,
**off the request path**: a start that finds the count older than that asks for a recount in
the background and decides on the count it has. Only the first start (no count yet), a start
after `stale_seconds` without a successful recount (the provider's list keeps failing), and a
start the cached count would refuse while a recount is under way (after a stop, say) wait for
one: admissions are fast, refusals are decided on a fresh count. Launches this replica made
since the recount was asked for are added to it, and launches in flight are counted too, so a
parallel burst cannot slip past the cap between the check and the provider noticing the new
machine. Sessions that end between recounts are noticed at the next one: the cap errs on the
side of refusing.

With several replicas sharing a store (`shared`), the launches since the recount are every
replica's, recorded and checked in one store script (dispatcher/store/launches.py); a store that
does not answer leaves the decision to this replica's own count, as with one replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from dispatcher.errors import ApiError
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.launches import SharedLaunches

log = logging.getLogger("dispatcher.sessions.admission")

# Sessions last minutes; a client told to come back sooner would only be refused again.
CAPACITY_RETRY_AFTER_SECONDS = 5.0


class Admission:
    def __init__(
        self,
        limit: int,
        active_count: Callable[[], Awaitable[int]],
        *,
        refresh_seconds: float = 1.0,
        stale_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedLaunches | None = None,
    ) -> None:
        self._limit = limit
        self._shared = shared
        self._counted_at_store: int | None = None  # the store's clock when the recount was asked for
        self._active_count = active_count
        self._refresh_seconds = refresh_seconds
        # Past this a count is not trusted (other replicas' launches are invisible in it).
        self._stale_seconds = stale_seconds if stale_seconds is not None else max(10.0, 10 * refresh_seconds)
        self._clock = clock
        self._counted: int | None = None  # the provider's count at the last recount
        self._counted_at = 0.0  # when that recount was asked for
        self._launched = 0  # launches this replica has made, ever
        self._launched_at_count = 0  # … when that recount was asked for
        self._in_flight = 0
        self._recount_task: asyncio.Task[None] | None = None

    def invalidate(self) -> None:
        """A session was just stopped here: recount now, in the background."""
        self._recount()

    async def recounted(self) -> None:
        """Wait for the recount in progress, if any (tests; `aclose`)."""
        if self._recount_task is not None:
            await asyncio.wait({self._recount_task})

    def _recount(self) -> asyncio.Task[None]:
        if self._recount_task is None or self._recount_task.done():
            self._recount_task = asyncio.create_task(self._count(), name="admission-recount")
            self._recount_task.add_done_callback(_log_failure)
        return self._recount_task

    async def _count(self) -> None:
        asked_at, launched = self._clock(), self._launched
        store_at = await self._store_now()
        counted = await self._active_count()
        self._counted, self._counted_at, self._launched_at_count = counted, asked_at, launched
        self._counted_at_store = store_at

    async def _store_now(self) -> int | None:
        if self._shared is None:
            return None
        try:
            return await self._shared.now()
        except StoreUnavailable:
            return None

    def _current(self) -> int:
        assert self._counted is not None
        return self._counted + (self._launched - self._launched_at_count) + self._in_flight

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        age = self._clock() - self._counted_at
        if self._counted is None or age >= self._stale_seconds:
            # Shielded: a client that goes away does not cancel the recount others wait for.
            await asyncio.shield(self._recount())
        elif age >= self._refresh_seconds:
            self._recount()  # this start decides on the count it has…
        task = self._recount_task
        if self._current() >= self._limit and task is not None and not task.done():
            await asyncio.shield(task)  # …unless that refuses it: a refusal waits for the recount
        token = await self._admit_shared()
        # No await from the check to the increment: the check-and-take is atomic here (and in the
        # store's script across replicas).
        if token is None and self._current() >= self._limit:
            raise self._at_capacity()
        self._in_flight += 1
        launched = False
        try:
            yield
            launched = True
        finally:
            self._in_flight -= 1
            if launched:
                self._launched += 1
            if token is not None:
                await self._settle_shared(token, launched)

    async def _admit_shared(self) -> str | None:
        """Admits across replicas: the token of the recorded launch, None to decide here alone;
        raises at_capacity when every replica's launches together reach the cap."""
        if self._shared is None or self._counted_at_store is None or self._counted is None:
            return None
        token = secrets.token_hex(8)
        try:
            admitted = await self._shared.admit(token, counted=self._counted, counted_at=self._counted_at_store,
                                                limit=self._limit)
        except StoreUnavailable:
            return None
        if not admitted:
            raise self._at_capacity()
        return token

    async def _settle_shared(self, token: str, launched: bool) -> None:
        assert self._shared is not None
        with contextlib.suppress(StoreUnavailable):  # else it ages out of the record
            await (self._shared.landed(token) if launched else self._shared.failed(token))

    def _at_capacity(self) -> ApiError:
        return ApiError(
            429,
            "at_capacity",
            f"the dispatcher already runs its maximum of {self._limit} sessions",
            retry_after=CAPACITY_RETRY_AFTER_SECONDS,
        )

    async def aclose(self) -> None:
        if self._recount_task is not None and not self._recount_task.done():
            self._recount_task.cancel()
            await asyncio.wait({self._recount_task})


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("admission: counting active sessions failed, keeping the last count: %s", exc)
