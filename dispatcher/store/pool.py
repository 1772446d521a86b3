"""The deployment's one reserve, in the store: whose bots are where, the starts, the planner's lease.

- `reserve-pool` (a hash): one field per replica, its bots (warming, idle, frozen, resuming) and its session
  count as JSON, stamped with the store's clock (`TIME`, so skewed replicas agree). Reading it
  drops every replica not heard from within a lease: a replica killed outright takes its bots out
  of the count one lease later, with no record left behind per bot.
- `reserve-arrivals` (a list, the last MAX_ARRIVALS): every start at any replica, its epoch and
  whether it launched cold. The planner takes them all each tick: they feed the forecast's tally
  and its mirror of the provider's create bucket, so both count the whole deployment once.
- `reserve-planner`: the planning lease (dispatcher/store/leases.py), held by one replica.
- `reserve-cold-starts` (a list, the last MAX_COLD_STARTS): every cold start measured at any replica,
  in seconds, for the wait a cold start is told (dispatcher/reserve/start_times.py); it outlives
  every replica, so a restarted deployment quotes its own starts at once.
- `reserve-state`: the planner's state (`FleetSizer.to_dict`: forecast, tally, estimates), so a
  restart or a handover carries on instead of relearning a week.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import Any

from dispatcher.store.client import Store
from dispatcher.store.coordination import PoolBot, PoolState, ReplicaPool
from dispatcher.store.leases import Leases
from dispatcher.store.memory import MAX_ARRIVALS, MAX_COLD_STARTS

log = logging.getLogger("dispatcher.store.pool")

MAX_BOTS_PER_REPLICA = 5_000  # a view larger than this is not one of ours
MAX_STATE_BYTES = 256 * 1024  # the planner's state is ~10 KB
STATES: frozenset[str] = frozenset({"warming", "idle", "frozen", "resuming"})

_PUBLISH = """
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], ARGV[1], t[1] .. ':' .. ARGV[2])
return 1
"""
_VIEWS = """
local now = tonumber(redis.call('TIME')[1])
local all = redis.call('HGETALL', KEYS[1])
local live = {}
for i = 1, #all, 2 do
  local value = all[i + 1]
  local sep = string.find(value, ':', 1, true)
  local seen = sep and tonumber(string.sub(value, 1, sep - 1))
  if seen == nil or now - seen > tonumber(ARGV[1]) then
    redis.call('HDEL', KEYS[1], all[i])
  else
    table.insert(live, all[i])
    table.insert(live, string.sub(value, sep + 1))
  end
end
return live
"""
# An entry appended to a list that keeps only its last ARGV[2].
_KEEP_LAST = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
return 1
"""
_TAKE_ARRIVALS = """
local all = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
return all
"""


class StorePool:
    def __init__(self, store: Store, leases: Leases) -> None:
        self._store = store
        self._leases = leases
        self._seconds = store.settings.lease_seconds
        self._pool = store.key("reserve-pool")
        self._arrivals = store.key("reserve-arrivals")
        self._lease = store.key("reserve-planner")
        self._state = store.key("reserve-state")
        self._cold_starts = store.key("reserve-cold-starts")
        redis = store.redis
        self._publish = redis.register_script(_PUBLISH)
        self._views = redis.register_script(_VIEWS)
        self._keep_last = redis.register_script(_KEEP_LAST)
        self._take_arrivals = redis.register_script(_TAKE_ARRIVALS)

    async def publish(self, view: ReplicaPool) -> None:
        payload = encode_view(view)
        await self._store.call(lambda: self._publish(keys=[self._pool], args=[view.replica_id, payload]))

    async def views(self) -> list[ReplicaPool]:
        flat = await self._store.call(lambda: self._views(keys=[self._pool], args=[math.ceil(self._seconds)]))
        views = []
        for replica_id, payload in zip(flat[::2], flat[1::2], strict=True):
            view = decode_view(str(replica_id), str(payload))
            if view is not None:
                views.append(view)
        return views

    async def withdraw(self) -> None:
        await self._store.call(lambda: self._store.redis.hdel(self._pool, self._store.replica_id))

    async def arrived(self, epoch: float, *, cold: bool) -> None:
        entry = f"{epoch:.3f}:{'c' if cold else 'w'}"
        await self._store.call(lambda: self._keep_last(keys=[self._arrivals], args=[entry, MAX_ARRIVALS]))

    async def arrivals(self) -> list[tuple[float, bool]]:
        entries = await self._store.call(lambda: self._take_arrivals(keys=[self._arrivals]))
        found = []
        for entry in entries:
            at, _, kind = str(entry).partition(":")
            try:
                epoch = float(at)
            except ValueError:
                continue
            if math.isfinite(epoch):
                found.append((epoch, kind == "c"))
        return sorted(found)

    async def plan_lease(self) -> bool:
        me = self._store.replica_id
        if await self._leases.take(self._lease, me, self._seconds) != me:
            return False
        return await self._leases.renew(self._lease, me, self._seconds)

    async def plan_lease_in_store(self) -> bool:
        return await self.plan_lease()

    async def let_go(self) -> None:
        await self._leases.release(self._lease, self._store.replica_id)

    async def save(self, state: Mapping[str, Any]) -> None:
        text = json.dumps(state, separators=(",", ":"))
        await self._store.call(lambda: self._store.redis.set(self._state, text))

    async def started_cold(self, seconds: float) -> None:
        entry = f"{seconds:.3f}"
        await self._store.call(lambda: self._keep_last(keys=[self._cold_starts], args=[entry, MAX_COLD_STARTS]))

    async def cold_starts(self) -> list[float]:
        entries = await self._store.call(lambda: self._store.redis.lrange(self._cold_starts, 0, -1))
        found = []
        for entry in entries:
            try:
                seconds = float(entry)
            except ValueError:
                continue
            if math.isfinite(seconds) and seconds > 0:
                found.append(seconds)
        return found

    async def load(self) -> dict[str, Any] | None:
        text = await self._store.call(lambda: self._store.redis.get(self._state))
        if text is None or len(text) > MAX_STATE_BYTES:
            return None
        try:
            state = json.loads(text)
        except ValueError:
            return None
        return state if isinstance(state, dict) else None


def encode_view(view: ReplicaPool) -> str:
    bots = [[b.bot_id, b.state, round(b.since, 3), b.image, list(b.transports)] for b in view.bots]
    return json.dumps({"sessions": view.sessions, "bots": bots}, separators=(",", ":"))


def decode_view(replica_id: str, payload: str) -> ReplicaPool | None:
    """A replica's view as it wrote it; None (and a log line) for one this code cannot read."""
    try:
        data = json.loads(payload)
        sessions = data["sessions"]
        raw_bots = data["bots"]
        if not isinstance(sessions, int) or not isinstance(raw_bots, list) or len(raw_bots) > MAX_BOTS_PER_REPLICA:
            raise ValueError("not a view")
        bots = tuple(_bot(raw) for raw in raw_bots)
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("replica %s's reserve record is unreadable (%s); not counted", replica_id[:64], exc)
        return None
    return ReplicaPool(replica_id, bots, max(0, sessions))


def _bot(raw: Any) -> PoolBot:
    bot_id, state, since, image, transports = raw
    if not (isinstance(bot_id, str) and state in STATES and isinstance(since, int | float)
            and isinstance(image, str) and isinstance(transports, list)
            and all(isinstance(t, str) for t in transports)):
        raise ValueError("not a reserve bot")
    pool_state: PoolState = state
    return PoolBot(bot_id, pool_state, float(since), image, tuple(transports))
