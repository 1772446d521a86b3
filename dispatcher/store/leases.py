"""Leases: a key that one holder owns until it lets go or stops renewing it.

A lease's value is its holder's token, so only the holder renews or releases it (a compare in a
Lua script, atomic in the store), and a holder that died frees it when the lease runs out. Used
for the start of a keyed session (one replica launches, the others wait for its result) and for a
session's owner (which replica holds its bot's channel).
"""

from __future__ import annotations

from dispatcher.store.client import Store

# SET NX, or the current holder: a reply lost on a dropped connection (redis-py retries once)
# must not make the caller believe someone else holds what it took.
_TAKE = """
local current = redis.call('GET', KEYS[1])
if current == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return current
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_SWAP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
# The lease handed over as it is: its expiry stays (KEEPTTL), whatever the new holder.
_HAND_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Leases:
    def __init__(self, store: Store) -> None:
        self._store = store
        redis = store.redis
        self._take = redis.register_script(_TAKE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._swap = redis.register_script(_SWAP)
        self._hand_over = redis.register_script(_HAND_OVER)

    async def take(self, key: str, holder: str, seconds: float) -> str:
        """Takes the lease if it is free; returns its holder (`holder` when taken or already held)."""
        value = await self._store.call(lambda: self._take(keys=[key], args=[holder, milliseconds(seconds)]))
        return str(value)

    async def put(self, key: str, holder: str, seconds: float) -> None:
        """Takes the lease whoever holds it (the newest holder is right: a bot that re-dialled)."""
        await self._store.call(lambda: self._store.redis.set(key, holder, px=milliseconds(seconds)))

    async def renew(self, key: str, holder: str, seconds: float) -> bool:
        return bool(await self._store.call(lambda: self._renew(keys=[key], args=[holder, milliseconds(seconds)])))

    async def release(self, key: str, holder: str) -> bool:
        return bool(await self._store.call(lambda: self._release(keys=[key], args=[holder])))

    async def swap(self, key: str, holder: str, new: str, seconds: float) -> bool:
        """Hands the lease from `holder` to `new` (a holder's record of what it went on to do)."""
        args: list[str | int] = [holder, new, milliseconds(seconds)]
        return bool(await self._store.call(lambda: self._swap(keys=[key], args=args)))

    async def hand_over(self, key: str, holder: str, new: str) -> bool:
        """Hands the lease from `holder` to `new` in one step, its expiry kept; False when `holder` no longer
        holds it (the compare is the point: what the caller read may have changed since)."""
        return bool(await self._store.call(lambda: self._hand_over(keys=[key], args=[holder, new])))

    async def holder(self, key: str) -> str | None:
        value = await self._store.call(lambda: self._store.redis.get(key))
        return None if value is None else str(value)


def milliseconds(seconds: float) -> int:
    return max(1, int(seconds * 1000))
