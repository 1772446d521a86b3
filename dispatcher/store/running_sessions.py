"""The deployment's running sessions, kept in the store as they land and end, so that admission's
count is one `ZCARD` instead of the provider's whole list every second.

`launches:running` is a sorted set of session ids: a launch adds its session as it lands, in the
script that records the landing (dispatcher/store/launches.py); whichever replica's timeline tells
a session's end takes it out. What neither sees (a replica killed between the create and the
landing, an end nobody noticed, a store of the previous version) is put right by a reconcile: every
`RECONCILE_SECONDS` one replica, holding the count's lease, lists the provider once and writes what it
found, by pages, scored with the store's time the list was asked for; the entries older than that it
did not find are then dropped, in one step with `launches:running:reconciled` (that time). The set
is trusted for admission only within `RECONCILE_SECONDS` of a reconcile; past that (or before the
first) admission lists the provider as before. docs/performance.md says what it costs and misses.
"""

from __future__ import annotations

from collections.abc import Collection

from dispatcher.store.client import Store

RECONCILE_SECONDS = 60.0  # how long the kept set stands in for the provider's list
PAGE = 500  # session ids a reconcile writes in one script: each step stays short for the store's one thread

# KEYS[1]: the set. ARGV[1]: when the list was asked for (store µs); then the ids it found. `GT`: one
# that landed after the list was asked for keeps its later time.
_FOUND = """
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'GT', ARGV[1], ARGV[i])
end
return 1
"""
# KEYS: the set, the reconcile's time. ARGV: the list's time (µs), how long that time is kept (ms).
_RECONCILED = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return redis.call('ZCARD', KEYS[1])
"""


class RunningSessions:
    def __init__(self, store: Store) -> None:
        self._store = store
        self.key, self.reconciled_key = store.key("launches", "running"), store.key("launches", "running", "reconciled")
        self._found = store.redis.register_script(_FOUND)
        self._reconciled = store.redis.register_script(_RECONCILED)

    async def reconcile(self, found: Collection[str], at: int) -> int:
        """The provider's active sessions as listed at `at` (store µs) become the set (those landed
        since kept); returns its size."""
        ids = sorted(found)
        for start in range(0, len(ids), PAGE):
            args: list[str | int] = [at, *ids[start:start + PAGE]]
            await self._store.call(lambda args=args: self._found(keys=[self.key], args=args))  # type: ignore[misc]
        keep_ms = int(RECONCILE_SECONDS * 10 * 1000)
        return int(await self._store.call(
            lambda: self._reconciled(keys=[self.key, self.reconciled_key], args=[at, keep_ms])))

    async def ended(self, session_id: str) -> None:
        await self._store.call(lambda: self._store.redis.zrem(self.key, session_id))
