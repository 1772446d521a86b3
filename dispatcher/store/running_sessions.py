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
first) admission lists the provider as before. A list that left some of the provider's machines out
(`PartlyFound`: a cell that did not answer) adds what it found and drops nothing: what it did not
see is not judged gone. An end told since the list was asked for is kept a while
(`launches:running:ended`), so the list's page does not bring that session back. docs/performance.md
says what it costs and misses.
"""

from __future__ import annotations

from collections.abc import Collection

from dispatcher.store.client import Store

RECONCILE_SECONDS = 60.0  # how long the kept set stands in for the provider's list
PAGE = 500  # session ids a reconcile writes in one script: each step stays short for the store's one thread
# How long a session's end is remembered, for a reconcile whose list was asked for before it: longer
# than a list takes (its count's lease is the launches' keep time, 10 s).
ENDS_KEPT_SECONDS = RECONCILE_SECONDS

# KEYS: the set, the ends told. ARGV[1]: when the list was asked for (store µs); then the ids it
# found. `GT`: one that landed after the list was asked for keeps its later time; one whose end was
# told since is not brought back.
_FOUND = """
local asked = tonumber(ARGV[1])
for i = 2, #ARGV do
  local ended = redis.call('ZSCORE', KEYS[2], ARGV[i])
  if not ended or tonumber(ended) < asked then
    redis.call('ZADD', KEYS[1], 'GT', asked, ARGV[i])
  end
end
return 1
"""
# KEYS: the set, the reconcile's time. ARGV: the list's time (µs), how long that time is kept (ms),
# 1 to drop what the list did not find (0: a partial list, nothing judged gone). Returns the
# sessions counted at the list's time (those landed since are still counted among the launches).
_RECONCILED = """
if ARGV[3] == '1' then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return redis.call('ZCOUNT', KEYS[1], '-inf', ARGV[1])
"""
# KEYS: the set, the ends told. ARGV: the session, how long an end is remembered (µs).
_ENDED = """
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[2]))
redis.call('ZADD', KEYS[2], now, ARGV[1])
return 1
"""


class PartlyFound(frozenset[str]):
    """The active sessions of a listing that left some machines out (a cell that did not answer):
    what it did not find may still run, so nothing is judged gone for want of it."""


class RunningSessions:
    def __init__(self, store: Store) -> None:
        self._store = store
        self.key, self.reconciled_key = store.key("launches", "running"), store.key("launches", "running", "reconciled")
        self._ended_key = store.key("launches", "running", "ended")
        self._found = store.redis.register_script(_FOUND)
        self._reconciled = store.redis.register_script(_RECONCILED)
        self._ended = store.redis.register_script(_ENDED)

    async def reconcile(self, found: Collection[str], at: int) -> int:
        """The provider's active sessions as listed at `at` (store µs) become the set (those landed
        since kept, those ended since left out; with `PartlyFound`, those not found kept too);
        returns the sessions it counts at `at`."""
        ids, keys = sorted(found), [self.key, self._ended_key]
        for start in range(0, len(ids), PAGE):
            args: list[str | int] = [at, *ids[start:start + PAGE]]
            await self._store.call(lambda args=args: self._found(keys=keys, args=args))  # type: ignore[misc]
        keep_ms, judged = int(RECONCILE_SECONDS * 10 * 1000), 0 if isinstance(found, PartlyFound) else 1
        return int(await self._store.call(
            lambda: self._reconciled(keys=[self.key, self.reconciled_key], args=[at, keep_ms, judged])))

    async def ended(self, session_id: str) -> None:
        args: list[str | int] = [session_id, int(ENDS_KEPT_SECONDS * 1_000_000)]
        await self._store.call(lambda: self._ended(keys=[self.key, self._ended_key], args=args))
