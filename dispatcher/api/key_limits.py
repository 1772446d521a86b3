"""Per-API-key rate limits (POST /start; reading, stopping and signalling sessions): one busy or
hostile client cannot starve the others, nor spend the provider budget they need.

With several replicas the bucket is in their shared store (dispatcher/store/rates.py), so the
rate is the deployment's, not each replica's; a store that does not answer leaves it to this
replica's own bucket.
"""

from __future__ import annotations

from dispatcher.errors import ApiError
from dispatcher.outbound.ratelimit import Rate, RateLimited, TokenBucket
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.rates import SharedRate

# Callers are few (one per API key, or "local"), so their buckets are kept for the process's life.


class PerKeyLimit:
    def __init__(self, per_second: float, burst: int, shared: SharedRate | None = None,
                 calls: str = "POST /start") -> None:
        self._calls = calls
        self._rate = Rate(per_second=per_second, burst=burst, max_wait=0.0)  # refuse, never queue
        self._buckets: dict[str, TokenBucket] = {}
        self._shared = shared

    async def check(self, caller: str) -> None:
        if self._shared is not None:
            try:
                wait = await self._shared.take(caller)
            except StoreUnavailable:
                pass  # this replica's own bucket decides
            else:
                if wait > 0:
                    raise _limited(wait, self._calls)
                return
        bucket = self._buckets.get(caller)
        if bucket is None:
            bucket = self._buckets[caller] = TokenBucket(f"start:{caller}", self._rate)
        try:
            await bucket.acquire()
        except RateLimited as exc:
            raise _limited(exc.retry_after, self._calls) from exc


def _limited(retry_after: float, calls: str = "POST /start") -> ApiError:
    return ApiError(429, "rate_limited", f"too many {calls} calls with this API key", retry_after=retry_after)
