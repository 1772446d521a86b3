"""Client-side rate limits: stay under each provider's documented API limits.

A token bucket per provider action (Fly create ≈1/s burst 3, ECS RunTask 20/s, Daily 20/s, …).
A caller that would have to queue longer than `max_wait` is refused at once with `RateLimited`
and a `retry_after`, which becomes `503` + `Retry-After` at the HTTP layer: admission control
instead of piling requests onto an API that will answer 429 anyway. Per process: with N
dispatcher replicas, size each bucket to 1/N of the provider's limit (docs/providers.md); creates
are counted once for the deployment instead (dispatcher/machines/creates.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from voicefleet_settings.read import setting_float, setting_int


class RateLimited(Exception):
    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"{name}: client-side rate limit, retry in {retry_after:.1f}s")
        self.name = name
        self.retry_after = retry_after


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: int
    max_wait: float = 2.0  # seconds a call may queue for a token before it is refused

    @classmethod
    def from_env(cls, env: Mapping[str, str], prefix: str) -> Rate:
        """`<prefix>_RATE` (calls/s), `<prefix>_BURST`, `<prefix>_MAX_WAIT` (s): each its catalogue entry,
        whose defaults are the provider's documented limits."""
        return cls(
            per_second=setting_float(env, f"{prefix}_RATE"),
            burst=setting_int(env, f"{prefix}_BURST"),
            max_wait=setting_float(env, f"{prefix}_MAX_WAIT"),
        )


class TokenBucket:
    """`burst` tokens, refilled at `per_second`. Waiters reserve their token (FIFO by arrival)."""

    def __init__(
        self,
        name: str,
        rate: Rate,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate.per_second <= 0 or rate.burst < 1:
            raise ValueError("a bucket needs a positive rate and a burst of at least 1")
        self.name = name
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(rate.burst)
        self._updated = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.rate.burst), self._tokens + (now - self._updated) * self.rate.per_second)
        self._updated = now

    async def acquire(self) -> None:
        async with self._lock:
            self._refill()
            # Tokens may go negative: each waiter owns the token that will arrive at its turn.
            wait = max(0.0, (1.0 - self._tokens) / self.rate.per_second)
            if wait > self.rate.max_wait:
                raise RateLimited(self.name, wait)
            self._tokens -= 1.0
        if wait > 0:
            await self._sleep(wait)
