"""Per-API-key rate limit on POST /start: one busy client cannot starve the others."""

from __future__ import annotations

from dispatcher.errors import ApiError
from dispatcher.outbound.ratelimit import Rate, RateLimited, TokenBucket

# Callers are few (one per API key, or "local"), so their buckets are kept for the process's life.


class PerKeyLimit:
    def __init__(self, per_second: float, burst: int) -> None:
        self._rate = Rate(per_second=per_second, burst=burst, max_wait=0.0)  # refuse, never queue
        self._buckets: dict[str, TokenBucket] = {}

    async def check(self, caller: str) -> None:
        bucket = self._buckets.get(caller)
        if bucket is None:
            bucket = self._buckets[caller] = TokenBucket(f"start:{caller}", self._rate)
        try:
            await bucket.acquire()
        except RateLimited as exc:
            raise ApiError(
                429, "rate_limited", "too many POST /start calls with this API key", retry_after=exc.retry_after
            ) from exc
