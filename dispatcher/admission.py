"""Admission control: at most MAX_CONCURRENT_SESSIONS sessions at once, checked atomically.

Counting the provider's active machines on every start would cost a list call per request (and
Fly allows about one per second), so the count is refreshed at most every `refresh_seconds`;
between refreshes, launches this replica made are added to it. Launches in flight are counted
too, so a parallel burst cannot slip past the cap between the check and the provider noticing
the new machine. Sessions that end between refreshes are noticed at the next refresh: the cap
errs on the side of refusing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from dispatcher.errors import ApiError

# Sessions last minutes; a client told to come back sooner would only be refused again.
CAPACITY_RETRY_AFTER_SECONDS = 5.0


class Admission:
    def __init__(
        self,
        limit: int,
        active_count: Callable[[], Awaitable[int]],
        *,
        refresh_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = limit
        self._active_count = active_count
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._counted: int | None = None  # the provider's count at the last refresh
        self._counted_at = 0.0
        self._launched_since = 0  # launches this replica made since that refresh
        self._in_flight = 0
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        """Recount at the next start (a session was just stopped here)."""
        self._counted = None

    async def _current(self) -> int:
        if self._counted is None or self._clock() - self._counted_at >= self._refresh_seconds:
            self._counted = await self._active_count()
            self._counted_at = self._clock()
            self._launched_since = 0
        return self._counted + self._launched_since + self._in_flight

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._lock:
            if await self._current() >= self._limit:
                raise ApiError(
                    429,
                    "at_capacity",
                    f"the dispatcher already runs its maximum of {self._limit} sessions",
                    retry_after=CAPACITY_RETRY_AFTER_SECONDS,
                )
            self._in_flight += 1
        launched = False
        try:
            yield
            launched = True
        finally:
            self._in_flight -= 1
            if launched:
                self._launched_since += 1
