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

from dispatcher.store.client import Store

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
