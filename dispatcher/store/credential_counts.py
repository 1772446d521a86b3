"""Credentials each caller holds until they expire, counted by every replica alike: a sorted set
per caller (`turn-credentials:<caller>`), scored by expiry (dispatcher/media/turn_quota.py)."""

from __future__ import annotations

from dispatcher.store.client import Store

# KEYS[1]: the caller's set. ARGV: now (ms), the credential's expiry (ms), the bound, a member.
# Returns 0 when the credential was counted, else the milliseconds until the oldest one expires.
_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) - tonumber(ARGV[1]))
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]) - tonumber(ARGV[1]))
return 0
"""


class SharedCredentialCounts:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._take = store.redis.register_script(_TAKE)

    def _key(self, caller: str) -> str:
        return self._store.key("turn-credentials", caller)

    async def take(self, caller: str, handle: str, now: float, expires: float, bound: int) -> float:
        args: list[int | str] = [int(now * 1000), int(expires * 1000), bound, handle]
        wait_ms = await self._store.call(lambda: self._take(keys=[self._key(caller)], args=args))
        return int(wait_ms) / 1000

    async def give_back(self, caller: str, handle: str) -> None:
        await self._store.call(lambda: self._store.redis.zrem(self._key(caller), handle))
