"""A rate whose calls cost more than one token each (`GET /usage`'s days: a query takes the days it
spans), GCRA as the start rate (dispatcher/store/rates.py): kept in the store, one script reading
and advancing a caller's bucket with the store's clock, so every replica takes from the same
bucket; while the store does not answer, this replica's own count (as every limit here).

A cost is a whole number from 1 to the burst (ValueError otherwise): zero or less would give
tokens back, a float past the store's integers would wrap its wait to a negative one (a pass),
and NaN would poison this replica's bucket for good. A store that answers with an error (its
script refused) is no store that is down: that raises, and is never forgiven with a local pass."""

from __future__ import annotations

import time
from collections.abc import Callable

from dispatcher.store.client import Store
from dispatcher.store.forgiving import forgiving

MAX_CALLERS = 10_000  # callers one process remembers before those that owe nothing are forgotten
ROUNDING = 1e-6  # seconds: a call that exactly fills the burst, summed in floats, is never refused for rounding

# ARGV: one token's interval (ms), burst (tokens), cost (tokens). Returns 0, or the ms until it could go.
_WEIGHTED_GCRA = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + tonumber(ARGV[3]) * interval
local wait = new_tat - now - tonumber(ARGV[2]) * interval
if wait > 0 then
  return wait
end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now)
return 0
"""


class StoreRefused(RuntimeError):
    """The store answered the rate's script with an error: not a store that is down."""


def checked_cost(cost: object, burst: int) -> int:
    if isinstance(cost, bool) or not isinstance(cost, int) or not 1 <= cost <= burst:
        raise ValueError(f"a weighted rate's cost is a whole number from 1 to its burst ({burst}), not {cost!r}")
    return cost


class LocalWeightedRate:
    """`burst` tokens at once, then `per_second`, per caller, counted in this process."""

    def __init__(self, per_second: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / per_second  # how long a token takes to be given back
        self._burst = burst
        self._clock = clock
        self._owed_until: dict[str, float] = {}  # caller → when all it took is given back

    async def take(self, caller: str, cost: int) -> float:
        cost = checked_cost(cost, self._burst)
        now = self._clock()
        owed_until = max(self._owed_until.get(caller, now), now) + cost * self._interval
        wait = owed_until - now - self._burst * self._interval
        if wait > ROUNDING:
            return wait
        if len(self._owed_until) >= MAX_CALLERS:
            self._owed_until = {key: until for key, until in self._owed_until.items() if until > now}
        self._owed_until[caller] = owed_until
        return 0.0


class SharedWeightedRate:
    """The same bucket for every replica: `<name>:<caller>` in the store."""

    def __init__(self, store: Store, name: str, per_second: float, burst: int) -> None:
        self._store = store
        self._name = name
        self._interval_ms = max(1, round(1000 / per_second))
        self._burst = burst
        self._script = store.redis.register_script(_WEIGHTED_GCRA)

    async def take(self, caller: str, cost: int) -> float:
        key = self._store.key(self._name, caller)
        args = [self._interval_ms, self._burst, checked_cost(cost, self._burst)]

        from redis.exceptions import ReadOnlyError, ResponseError  # loaded: this store's client has

        async def run() -> float:
            try:
                return float(await self._script(keys=[key], args=args))
            except ReadOnlyError:  # a replica mid-failover: a store that does not answer yet
                raise
            except ResponseError as exc:  # outside the RedisError that Store.call counts as down
                raise StoreRefused(f"the store refused the {self._name} rate's script: {exc}") from exc

        return await self._store.call(run) / 1000


class ForgivingWeightedRate:
    def __init__(self, shared: SharedWeightedRate, alone: LocalWeightedRate) -> None:
        self._shared = shared
        self._alone = alone

    async def take(self, caller: str, cost: int) -> float:
        return await forgiving(lambda: self._shared.take(caller, cost), lambda: self._alone.take(caller, cost),
                               "weighted rate")
