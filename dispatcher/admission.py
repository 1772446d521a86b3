"""Admission control: at most MAX_CONCURRENT_SESSIONS sessions at once, checked atomically.

Launches in flight are counted with the provider's active machines, so a parallel burst cannot
slip past the cap between the check and the provider noticing the new machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from dispatcher.errors import ApiError

# Sessions last minutes; a client told to come back sooner would only be refused again.
CAPACITY_RETRY_AFTER_SECONDS = 5.0


class Admission:
    def __init__(self, limit: int, active_count: Callable[[], Awaitable[int]]) -> None:
        self._limit = limit
        self._active_count = active_count
        self._in_flight = 0
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._lock:
            if await self._active_count() + self._in_flight >= self._limit:
                raise ApiError(
                    429,
                    "at_capacity",
                    f"the dispatcher already runs its maximum of {self._limit} sessions",
                    retry_after=CAPACITY_RETRY_AFTER_SECONDS,
                )
            self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
