"""Per-API-key rate limits (POST /start; reading, stopping and signalling sessions): one busy or
hostile client cannot starve the others, nor spend the provider budget they need.

The start rate is the coordination's (`Coordination.start_rate`): with several replicas its bucket
is in their store (dispatcher/store/rates.py), so the rate is the deployment's, not each
replica's; a store that does not answer leaves it to this replica's own bucket. The read rate is
each replica's own (dispatcher/store/memory.py's `LocalRate`).
"""

from __future__ import annotations

from dispatcher.errors import ApiError
from dispatcher.store.coordination import Rate


class PerKeyLimit:
    def __init__(self, rate: Rate, calls: str = "POST /start") -> None:
        self._calls = calls
        self._rate = rate  # refuses, never queues

    async def check(self, caller: str) -> None:
        wait = await self._rate.take(caller)
        if wait > 0:
            raise _limited(wait, self._calls)

    async def take(self, caller: str) -> float:
        """0 when a call was taken from `caller`'s bucket, else the seconds until one may be (for a
        caller that waits instead of being refused: a session's watcher)."""
        return await self._rate.take(caller)


def _limited(retry_after: float, calls: str = "POST /start") -> ApiError:
    return ApiError(429, "rate_limited", f"too many {calls} calls with this API key", retry_after=retry_after)
