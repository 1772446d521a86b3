"""Admission across replicas: launches under way or just made, counted in one place.

The provider's list says how many sessions run, but only after a launch lands there, and each
replica's own tally of launches since its last count misses the others'. With a store, every
admitted launch is recorded in one sorted set, `launches`, scored with the store's clock (µs); a start
is admitted by one script only if the provider's last count plus the launches recorded since
that count was asked for stays under the cap. A launch in flight is scored in the future (its
admission plus the keep time), so every count counts it until it lands; one that lands moves to
its landing time (a count asked for later sees it at the provider); one that fails is removed.
Entries older than the keep time are dropped: by then a recount has seen them, and a launch whose
replica died in flight stops counting.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

from dispatcher.store.client import Store
from dispatcher.store.coordination import AtCapacity
from dispatcher.store.forgiving import forgiving, nothing
from dispatcher.store.memory import LocalLaunches

_ADMIT = """
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[4]))
local running = tonumber(ARGV[1]) + redis.call('ZCOUNT', KEYS[1], ARGV[2], '+inf')
if running >= tonumber(ARGV[3]) then
  return -1
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[6]), ARGV[5])
return running
"""
_LANDED = """
local t = redis.call('TIME')
return redis.call('ZADD', KEYS[1], 'XX', t[1] * 1000000 + t[2], ARGV[1])
"""


class SharedLaunches:
    def __init__(self, store: Store, keep_seconds: float) -> None:
        self._store = store
        self._key = store.key("launches")
        self._keep_us = int(keep_seconds * 1_000_000)
        self._admit = store.redis.register_script(_ADMIT)
        self._landed = store.redis.register_script(_LANDED)

    async def now(self) -> int:
        """The store's clock in microseconds: when a recount is asked for (the replicas' own
        clocks may disagree)."""
        seconds, micros = await self._store.call(self._store.redis.time)
        return int(seconds) * 1_000_000 + int(micros)

    async def admit(self, session_id: str, *, counted: int, counted_at: int, limit: int) -> bool:
        """Records the launch and returns True if the cap allows it, atomically across replicas.
        `counted_at`: `now()` when the provider count `counted` was asked for."""
        args: list[str | int] = [counted, counted_at, limit, self._keep_us, session_id, self._keep_us]
        running = await self._store.call(lambda: self._admit(keys=[self._key], args=args))
        return int(running) >= 0

    async def landed(self, session_id: str) -> None:
        await self._store.call(lambda: self._landed(keys=[self._key], args=[session_id]))

    async def failed(self, session_id: str) -> None:
        await self._store.call(lambda: self._store.redis.zrem(self._key, session_id))


class RedisLaunches:
    """Admission's tally across replicas: the store's record decides, and this replica keeps its
    own tally too, which decides alone when the store does not answer (as in one process)."""

    def __init__(self, shared: SharedLaunches, alone: LocalLaunches) -> None:
        self._shared = shared
        self._alone = alone
        self._counted_at: int | None = None  # the store's clock when the last count was asked for

    async def recount(self, count: Callable[[], Awaitable[int]]) -> None:
        asked = self._alone.asked()
        at = await forgiving(self._shared.now, nothing, "admission's clock")
        self._alone.count_is(await count(), asked)
        self._counted_at = at

    def current(self) -> int:
        return self._alone.current()

    @contextlib.asynccontextmanager
    async def slot(self, limit: int) -> AsyncIterator[None]:
        token = await self._admit(limit)
        if token is None:  # the store did not decide: this replica's own count does
            async with self._alone.slot(limit):
                yield
            return
        launched = False
        try:
            async with self._alone.launching():
                yield
            launched = True
        finally:
            await forgiving(lambda: self._shared.landed(token) if launched else self._shared.failed(token),
                            nothing, "a launch's record")  # else it ages out of the record

    async def _admit(self, limit: int) -> str | None:
        """The token of the launch recorded across replicas; None when the store did not decide;
        raises AtCapacity when every replica's launches together reach the cap."""
        counted_at = self._counted_at
        if counted_at is None:
            return None
        token = secrets.token_hex(8)
        admitted = await forgiving(
            lambda: self._shared.admit(token, counted=self._alone.counted, counted_at=counted_at, limit=limit),
            nothing, "admission")
        if admitted is False:
            raise AtCapacity
        return None if admitted is None else token
