"""Per-API-key start rates shared by every replica: a GCRA token bucket kept in the store.

One key per caller, `rate:<caller>`, holds the bucket's theoretical arrival time; one script
reads and advances it with the store's own clock (`TIME`), so replicas with skewed clocks agree.
`burst` calls may come at once, then one per 1/`per_second` seconds.
"""

from __future__ import annotations

from dispatcher.store.client import Store

_GCRA = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allowed_at = new_tat - burst * interval
if allowed_at > now then
  return allowed_at - now
end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now)
return 0
"""


class SharedRate:
    def __init__(self, store: Store, per_second: float, burst: int) -> None:
        self._store = store
        self._interval_ms = max(1, int(1000 / per_second))
        self._burst = burst
        self._script = store.redis.register_script(_GCRA)

    async def take(self, caller: str) -> float:
        """0 if the call may go; else the seconds until it could."""
        key = self._store.key("rate", caller)
        wait_ms = await self._store.call(lambda: self._script(keys=[key], args=[self._interval_ms, self._burst]))
        return int(wait_ms) / 1000
