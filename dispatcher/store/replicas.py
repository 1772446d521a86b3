"""The replicas that share a store, and whether each is serving or draining (LiveKit's node list).

Each replica writes `replica:<id>` = its state with a lease, renewed by its heartbeat: a replica
killed outright drops out one lease later, a draining one says so at once. Relaying to a replica
that is not in the list is not tried (its sessions' bots are re-dialling elsewhere).

The replicas are found through an index (`replicas`: each id scored by when its lease runs out on the
store's clock), not by scanning the key space: `GET /status` asks every few seconds, and at 100,000
live sessions the store holds some 300,000 keys (3,000 `SCAN` round trips a read). A replica of a
version without the index is not listed until it is replaced (docs/replicas.md, "Limits").
"""

from __future__ import annotations

from typing import Literal

from dispatcher.store.client import Store

State = Literal["serving", "draining"]
MAX_LISTED = 1_000  # more replicas than a region runs: the index is not ours past this

# KEYS: the replica's record, the index. ARGV: the replica's id, its state, the lease (ms).
_ANNOUNCE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms)  -- a crash-looping replica's ids go with their lease
redis.call('ZADD', KEYS[2], now_ms + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
"""
# KEYS: the index. ARGV: the most ids returned. The ids whose lease has not run out, pruning the others.
_LISTED = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
return redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
"""


class Replicas:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._ms = max(1, int(store.settings.lease_seconds * 1000))
        self._index = store.key("replicas")
        self._announce = store.redis.register_script(_ANNOUNCE)
        self._listed = store.redis.register_script(_LISTED)

    async def announce(self, state: State) -> None:
        keys = [self._store.key("replica", self._store.replica_id), self._index]
        args: list[str | int] = [self._store.replica_id, state, self._ms]
        await self._store.call(lambda: self._announce(keys=keys, args=args))

    async def leave(self) -> None:
        key = self._store.key("replica", self._store.replica_id)

        async def leave() -> None:
            await self._store.redis.delete(key)
            await self._store.redis.zrem(self._index, self._store.replica_id)

        await self._store.call(leave)

    async def state_of(self, replica_id: str) -> State | None:
        value = await self._store.call(lambda: self._store.redis.get(self._store.key("replica", replica_id)))
        return _state(value)

    async def live(self) -> dict[str, State]:
        """Every replica whose lease has not run out, with its state (two round trips)."""

        async def read() -> dict[str, State]:
            listed = [_text(i) for i in await self._listed(keys=[self._index], args=[MAX_LISTED])]
            if not listed:
                return {}
            states = await self._store.redis.mget([self._store.key("replica", i) for i in listed])
            return {i: state for i, value in zip(listed, states, strict=True) if (state := _state(value)) is not None}

        return await self._store.call(read)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _state(value: object) -> State | None:
    if value == "serving":
        return "serving"
    return "draining" if value == "draining" else None
