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

The tally itself is the coordination's (`Launches`, dispatcher/store/coordination.py): one
process counts its own launches (dispatcher/store/memory.py); several replicas sharing a store
record and check every replica's in one store script (dispatcher/store/launches.py), and a store
that does not answer leaves the decision to this replica's own count, as with one replica.
Several replicas also share the count: a recount finds the one another replica asked for less
than `refresh_seconds` ago in the store (or waits for the one it is asking for) and uses it, its
age as its own, so the deployment lists the provider about once per refresh whatever the number
of replicas (on Fly, each of its apps, 1 list/s each, counted once for the deployment too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager

from dispatcher.errors import ApiError
from dispatcher.store.coordination import AtCapacity, Launches
from dispatcher.store.share_ask import ShareAsk, share_first

log = logging.getLogger("dispatcher.sessions.admission")

# Sessions last minutes; a client told to come back sooner would only be refused again.
CAPACITY_RETRY_AFTER_SECONDS = 5.0


class Admission:
    def __init__(
        self,
        limit: int,
        active_count: Callable[[], Awaitable[int]],
        *,
        launches: Launches,
        refresh_seconds: float = 1.0,
        stale_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        active_sessions: Callable[[], Awaitable[Collection[str]]] | None = None,
    ) -> None:
        self._limit = limit
        self._launches = launches
        self._active_count = active_count
        self._active_sessions = active_sessions  # the provider's: lets the store keep them between lists
        self._refresh_seconds = refresh_seconds
        # Past this a count is not trusted (other replicas' launches are invisible in it).
        self._stale_seconds = stale_seconds if stale_seconds is not None else max(10.0, 10 * refresh_seconds)
        self._clock = clock
        self._counted = False  # a recount has answered
        self._counted_at = 0.0  # when that recount was asked for
        self._recount_task: asyncio.Task[None] | None = None

    @property
    def limit(self) -> int:
        """The session cap new starts are admitted under."""
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        # A runtime change (dispatcher/api/runtime_capacity.py): the next start is checked against it;
        # sessions already running above a lowered cap go on (nothing is stopped).
        self._limit = value

    def in_use(self) -> int:
        """Sessions counted against the cap by this replica's last count (no provider call)."""
        return self._launches.current()

    def room(self) -> int:
        """Sessions that may still start, by the count this replica has (cheap, maybe a second old)."""
        return max(0, self._limit - self._launches.current())

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
        age = await self._launches.recount(self._active_count, self._refresh_seconds, self._active_sessions)
        self._counted, self._counted_at = True, self._clock() - age  # when the count was asked for

    @asynccontextmanager
    async def slot(self, share: ShareAsk | None = None, session_id: str = "") -> AsyncIterator[None]:
        """One launch (of `session_id`) under the cap for the block; 429 `at_capacity` when it is
        reached. With `share`, the key's place is taken with it (`Launches.slot`; `ShareHeld` when refused)."""
        try:
            await self._counted_for_start()
        except Exception:
            if share is not None:  # the key's share answers first, as when it was taken before the count
                await share_first(share)
            raise
        async with contextlib.AsyncExitStack() as launching:
            try:
                await launching.enter_async_context(self._launches.slot(self._limit, share, session_id))
            except AtCapacity:
                raise self._at_capacity() from None
            yield

    async def _counted_for_start(self) -> None:
        """A count to decide on: waited for when there is none (or it is stale, or it would refuse
        while a recount is under way); else asked for in the background when due."""
        age = self._clock() - self._counted_at
        if not self._counted or age >= self._stale_seconds:
            # Shielded: a client that goes away does not cancel the recount others wait for.
            await asyncio.shield(self._recount())
        elif age >= self._refresh_seconds:
            self._recount()  # this start decides on the count it has…
        task = self._recount_task
        if self._launches.current() >= self._limit and task is not None and not task.done():
            await asyncio.shield(task)  # …unless that refuses it: a refusal waits for the recount

    async def ended(self, session_id: str) -> None:
        """The session ended: the running sessions kept for the deployment no longer count it."""
        await self._launches.ended(session_id)

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
