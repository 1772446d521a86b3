"""Machine ends still in their grace (sessions/machine_end_grace.py): each session's id and when any replica's
sweep may take it, for whichever finds it due first. Written when the grace begins, scored a margin past
the grace's end (its owner's own to finalise until then, `take_own`), and handed over at a close by moving
the score to the grace's end, so a replica that closes or dies within the grace loses none of them.

With several replicas (`StoreHandedOverEnds`) they are one sorted set in the store, scored by when they are
due (epoch seconds, which the replicas share). A sweep claims due ones by moving their score a lease ahead
in one script (store/due_claims.py), so one replica finalises each at a time; a replica that dies holding
a claim only delays it by the lease, and the finalisers' own once-only marks make a second finalisation add
nothing. Its owner takes its own entry back only while it still holds the score it wrote, so an owner and a
sweep never both finalise it. Each entry lives from its machine's end to its finalisation (a few seconds),
so the set holds the ends of the last seconds; it expires once nothing was written for `KEEP_SECONDS`. Beside
each entry, written in the same script call and removed with it, its record (store/kept_end_record.py: the
session's timeline as its owner saw it, sealed like the timeline's events), from which a sweep finalises an end
whose timeline never reached the store; an entry written before records were kept has none. One
process (`MemoryHandedOverEnds`) has no other replica to hand over to: it is not `shared`, keeps nothing,
and its close finalises what it holds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from dispatcher.store.client import Store
from dispatcher.store.due_claims import CLAIM_DUE
from dispatcher.store.kept_end_record import decoded, encoded
from dispatcher.store.message_seal import MessageSeal

Events = Sequence[Mapping[str, Any]]

KEEP_SECONDS = 3_600.0  # far past any grace and lease: a set nobody claims from (every replica gone) lapses


class HandedOverEnds(Protocol):
    shared: bool  # another replica reads what is handed over here

    async def keep(self, session_id: str, kept_until: float, events: Events = ()) -> None:
        """The session's machine ended: its end is kept for any replica's sweep from `kept_until` on, should its
        owner not finalise it by then (an entry already there, a hand-over's, is left as it is), with `events`,
        its timeline as its owner saw it (a record already there is left as it is)."""
        ...

    async def hand_over(self, session_id: str, grace_ends: float, events: Events = ()) -> None:
        """The session's machine ended and its grace runs until `grace_ends`: another replica finalises it (an
        entry kept for later is brought forward to then)."""
        ...

    async def record(self, session_id: str) -> list[dict[str, Any]] | None:
        """The timeline kept with the session's end (None: none kept, or not one a replica wrote)."""
        ...

    async def due(self, now: float, lease_seconds: float, limit: int) -> list[str]:
        """Up to `limit` sessions whose grace ended by `now`, each now held for `lease_seconds`."""
        ...

    async def take_own(self, session_id: str, kept_until: float, held_until: float) -> bool:
        """Whether the session's entry still stood at `kept_until` (what its owner wrote: no sweep took it, no
        close handed it over) and is now held until `held_until` for its owner."""
        ...

    async def done(self, session_id: str) -> None: ...


class MemoryHandedOverEnds:
    """This process's: `shared` only where a test stands it in for the replicas' store."""

    def __init__(self, *, shared: bool = False) -> None:
        self.shared = shared
        self._due: dict[str, float] = {}
        self._records: dict[str, bytes] = {}

    async def keep(self, session_id: str, kept_until: float, events: Events = ()) -> None:
        self._due.setdefault(session_id, kept_until)
        self._keep_record(session_id, events)

    async def hand_over(self, session_id: str, grace_ends: float, events: Events = ()) -> None:
        self._due[session_id] = min(grace_ends, self._due.get(session_id, grace_ends))
        self._keep_record(session_id, events)

    def _keep_record(self, session_id: str, events: Events) -> None:
        if events and (text := encoded(session_id, events)) is not None:
            self._records.setdefault(session_id, text)

    async def record(self, session_id: str) -> list[dict[str, Any]] | None:
        text = self._records.get(session_id)
        return None if text is None else decoded(text)

    async def due(self, now: float, lease_seconds: float, limit: int) -> list[str]:
        claimed = sorted((at, session_id) for session_id, at in self._due.items() if at <= now)[:limit]
        for _, session_id in claimed:
            self._due[session_id] = now + lease_seconds
        return [session_id for _, session_id in claimed]

    async def take_own(self, session_id: str, kept_until: float, held_until: float) -> bool:
        if self._due.get(session_id) != kept_until:
            return False
        self._due[session_id] = held_until
        return True

    async def done(self, session_id: str) -> None:
        self._due.pop(session_id, None)
        self._records.pop(session_id, None)


# Only commands the stack's store user is granted (stacks/shared/store_access.py).
# KEYS: the sorted set, the end's record. ARGV: id, when it is due, keep (ms), the ZADD flag: NX (kept at the
# grace's start: never moves an entry already there) or LT (handed over at a close: brings a kept entry forward,
# adds a new one), the sealed record ('' for none; one already there is kept).
_WRITE = """
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if ARGV[5] ~= '' then
  redis.call('SET', KEYS[2], ARGV[5], 'PX', ARGV[3], 'NX')
end
return 1
"""
# KEYS: the sorted set, the end's record. ARGV: id.
_DONE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1
"""
# KEYS: the sorted set. ARGV: id, the score its owner wrote, the owner's hold's end. 1: taken by its owner.
# (ZSCORE is not granted: the members at exactly that score are few, usually this one.)
_TAKE_OWN = """
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], ARGV[2], ARGV[2], 'BYSCORE')) do
  if member == ARGV[1] then
    redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
    return 1
  end
end
return 0
"""


class StoreHandedOverEnds:
    """The replicas' (`REDIS_URL`); a store that does not answer raises `StoreUnavailable`."""

    shared = True

    def __init__(self, store: Store, seal: MessageSeal) -> None:
        self._store = store
        self._seal = seal
        self._key = store.key("machine-ends", "handed-over")
        self._write = store.redis.register_script(_WRITE)
        self._claim = store.redis.register_script(CLAIM_DUE)
        self._take_own = store.redis.register_script(_TAKE_OWN)
        self._done = store.redis.register_script(_DONE)

    def _record_key(self, session_id: str) -> str:
        return self._store.key("machine-ends", "record", session_id)

    async def keep(self, session_id: str, kept_until: float, events: Events = ()) -> None:
        await self._written(session_id, kept_until, "NX", events)

    async def hand_over(self, session_id: str, grace_ends: float, events: Events = ()) -> None:
        await self._written(session_id, grace_ends, "LT", events)

    async def _written(self, session_id: str, due: float, flag: str, events: Events) -> None:
        record_key = self._record_key(session_id)
        text = encoded(session_id, events) if events else None
        sealed = self._seal.seal_record(record_key, text).decode() if text is not None else ""
        args: list[str | float | int] = [session_id, due, math.ceil(KEEP_SECONDS * 1000), flag, sealed]
        await self._store.call(lambda: self._write(keys=[self._key, record_key], args=args))

    async def record(self, session_id: str) -> list[dict[str, Any]] | None:
        record_key = self._record_key(session_id)
        raw = await self._store.call(lambda: self._store.redis.get(record_key))
        if raw is None:
            return None
        opened = self._seal.open_record("machine_end", record_key, raw.encode() if isinstance(raw, str) else raw)
        return None if opened is None else decoded(opened)

    async def due(self, now: float, lease_seconds: float, limit: int) -> list[str]:
        args: list[float | int] = [now, now + lease_seconds, limit]
        return [str(session_id) for session_id in await self._store.call(lambda: self._claim(keys=[self._key],
                                                                                             args=args))]

    async def take_own(self, session_id: str, kept_until: float, held_until: float) -> bool:
        args: list[str | float] = [session_id, kept_until, held_until]
        return bool(await self._store.call(lambda: self._take_own(keys=[self._key], args=args)))

    async def done(self, session_id: str) -> None:
        keys = [self._key, self._record_key(session_id)]
        await self._store.call(lambda: self._done(keys=keys, args=[session_id]))


def handed_over_ends(coordination: object) -> HandedOverEnds:
    """The store's where the replicas share one (`REDIS_URL`), else this process's memory."""
    store, seal = getattr(coordination, "store", None), getattr(coordination, "seal", None)
    if isinstance(store, Store) and isinstance(seal, MessageSeal):
        return StoreHandedOverEnds(store, seal)
    return MemoryHandedOverEnds()
