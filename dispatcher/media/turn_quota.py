"""How many TURN credentials one API key holds at once: a bound per key, so one key cannot crowd
the managed relay's allocations out from under every other key.

A client's TURN credential lets whoever holds it make allocations on the relay (up to the
relay's `user-quota` per credential) until it expires, and coturn offers no way to take one back
(`DELETE /sessions/{id}` ends the session, not the credential: with `use-auth-secret` there is
nothing to revoke, and a refresh is authenticated with the key derived at allocation, so an
allocation outlives its credential while its holder refreshes it; docs/security.md). So a key's
credentials count until they expire, whether their sessions ended or not, and a start that would
take a key past `TURN_CREDENTIALS_PER_KEY` is refused with 429 before any machine is launched.

With several replicas the count is in their shared store (a sorted set per key, scored by expiry,
so every replica counts the same credentials); a store that does not answer leaves it to this
replica's own count. Without a store, each caller's expiries are kept in memory (callers are
few: one per API key).
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable

from dispatcher.errors import ApiError
from dispatcher.store.client import Store, StoreUnavailable

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


class TurnQuota:
    """`take(caller)` counts one more credential for the caller, or raises the 429 saying when
    one of its credentials expires; `give_back` uncounts one that was never handed out."""

    def __init__(self, per_key: int, lifetime_seconds: int, *, store: Store | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.per_key = per_key
        self._lifetime = lifetime_seconds
        self._clock = clock
        self._held: dict[str, dict[str, float]] = {}  # caller → credential → its expiry
        self._shared = (store, store.redis.register_script(_TAKE)) if store is not None else None

    async def take(self, caller: str) -> str:
        """A handle for `give_back`; raises ApiError 429 when the caller holds `per_key` already."""
        now = self._clock()
        handle = secrets.token_hex()  # a member of the key's set at every replica: unique
        wait = await self._take_shared(caller, now, handle)
        if wait is None:
            wait = self._take_here(caller, now, handle)
        if wait > 0:
            raise ApiError(
                429, "turn_credentials_exhausted",
                f"this API key holds {self.per_key} TURN credentials that have not expired "
                f"(TURN_CREDENTIALS_PER_KEY); ending a session does not return its credential",
                retry_after=wait,
            )
        return handle

    async def give_back(self, caller: str, handle: str) -> None:
        """The start failed before its credential was handed out: it does not count."""
        self._held.get(caller, {}).pop(handle, None)
        if self._shared is not None:
            store, key = self._shared[0], self._shared[0].key("turn-credentials", caller)
            try:
                await store.call(lambda: store.redis.zrem(key, handle))
            except StoreUnavailable:
                pass  # it counts until it expires, which only errs on the bound's side

    async def _take_shared(self, caller: str, now: float, handle: str) -> float | None:
        if self._shared is None:
            return None
        store, script = self._shared
        key = store.key("turn-credentials", caller)
        args: list[int | str] = [int(now * 1000), int((now + self._lifetime) * 1000), self.per_key, handle]
        try:
            wait_ms = await store.call(lambda: script(keys=[key], args=args))
        except StoreUnavailable:
            return None
        return int(wait_ms) / 1000

    def _take_here(self, caller: str, now: float, handle: str) -> float:
        held = self._held.setdefault(caller, {})
        for old, expiry in list(held.items()):
            if expiry <= now:
                del held[old]
        if len(held) >= self.per_key:
            return max(math.ceil(min(held.values()) - now), 1)
        held[handle] = now + self._lifetime
        return 0.0

