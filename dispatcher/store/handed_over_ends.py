"""Machine ends a closing replica handed over while their grace still ran (sessions/machine_end_grace.py):
each session's id and when its grace ends, for whichever replica's sweep finds it due first.

With several replicas (`StoreHandedOverEnds`) they are one sorted set in the store, scored by the grace's
end (epoch seconds, which the replicas share). A sweep claims due ones by moving their score a lease ahead
in one script (store/due_claims.py), so one replica finalises each at a time; a replica that dies holding
a claim only delays it by the lease, and the finalisers' own once-only marks make a second finalisation add
nothing. The set
expires once nothing was handed over for `KEEP_SECONDS`. One process (`MemoryHandedOverEnds`) has no
other replica to hand over to: it is not `shared`, and its close finalises what it holds.
"""

from __future__ import annotations

import math
from typing import Protocol

from dispatcher.store.client import Store
from dispatcher.store.due_claims import CLAIM_DUE

KEEP_SECONDS = 3_600.0  # far past any grace and lease: a set nobody claims from (every replica gone) lapses


class HandedOverEnds(Protocol):
    shared: bool  # another replica reads what is handed over here

    async def hand_over(self, session_id: str, grace_ends: float) -> None:
        """The session's machine ended and its grace runs until `grace_ends`: another replica finalises it."""
        ...

    async def due(self, now: float, lease_seconds: float, limit: int) -> list[str]:
        """Up to `limit` sessions whose grace ended by `now`, each now held for `lease_seconds`."""
        ...

    async def done(self, session_id: str) -> None: ...


class MemoryHandedOverEnds:
    """This process's: `shared` only where a test stands it in for the replicas' store."""

    def __init__(self, *, shared: bool = False) -> None:
        self.shared = shared
        self._due: dict[str, float] = {}

    async def hand_over(self, session_id: str, grace_ends: float) -> None:
        self._due[session_id] = grace_ends

    async def due(self, now: float, lease_seconds: float, limit: int) -> list[str]:
        claimed = sorted((at, session_id) for session_id, at in self._due.items() if at <= now)[:limit]
        for _, session_id in claimed:
            self._due[session_id] = now + lease_seconds
        return [session_id for _, session_id in claimed]

    async def done(self, session_id: str) -> None:
        self._due.pop(session_id, None)


# Only commands the stack's store user is granted (stacks/shared/store_access.py).
# KEYS: the sorted set. ARGV: id, grace's end, keep (ms).
_HAND_OVER = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


class StoreHandedOverEnds:
    """The replicas' (`REDIS_URL`); a store that does not answer raises `StoreUnavailable`."""

    shared = True

    def __init__(self, store: Store) -> None:
        self._store = store
        self._key = store.key("machine-ends", "handed-over")
        self._hand_over = store.redis.register_script(_HAND_OVER)
        self._claim = store.redis.register_script(CLAIM_DUE)

    async def hand_over(self, session_id: str, grace_ends: float) -> None:
        args: list[str | float | int] = [session_id, grace_ends, math.ceil(KEEP_SECONDS * 1000)]
        await self._store.call(lambda: self._hand_over(keys=[self._key], args=args))

    async def due(self, now: float, lease_seconds: float, limit: int) -> list[str]:
        args: list[float | int] = [now, now + lease_seconds, limit]
        return [str(session_id) for session_id in await self._store.call(lambda: self._claim(keys=[self._key],
                                                                                             args=args))]

    async def done(self, session_id: str) -> None:
        await self._store.call(lambda: self._store.redis.zrem(self._key, session_id))


def handed_over_ends(coordination: object) -> HandedOverEnds:
    """The store's where the replicas share one (`REDIS_URL`), else this process's memory."""
    store = getattr(coordination, "store", None)
    return StoreHandedOverEnds(store) if isinstance(store, Store) else MemoryHandedOverEnds()
