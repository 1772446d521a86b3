"""Where lifecycle webhooks wait until delivered: with several replicas, in the store, so an event is
delivered even when the replica that saw it dies before its receiver answered.

An entry is the event (`kind`, `data`, attempts so far) under its message id, with the time it is
next due. A replica's deliverer *claims* due entries: in one step their due time moves a lease
ahead, so no other replica takes them while this one tries; a delivered entry is removed, a
failed one is given the time of its next attempt. A replica that dies holding a claim only delays
its entries by the lease: another one claims them then. So delivery is at least once, and a
receiver may see an event twice (when a replica died after the receiver answered but before the
entry was removed): the message id, the same on every delivery, is how it drops the repeat.

One process keeps them in memory (`MemoryOutbox`); several replicas in the store (`StoreOutbox`:
a hash of entries and a sorted set of due times, `webhooks:outbox` and `webhooks:due`).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from dispatcher.store.client import Store

Entry = dict[str, Any]  # {"kind", "data", "attempts"}


class Outbox(Protocol):
    async def put(self, message_id: str, entry: Entry, due: float, limit: int) -> bool:
        """Adds an entry (replacing one with the same id); False when `limit` are waiting already."""
        ...

    async def claim(self, now: float, lease_seconds: float, limit: int) -> list[tuple[str, Entry]]:
        """Up to `limit` entries due by `now`, each now held for `lease_seconds`."""
        ...

    async def retry(self, message_id: str, entry: Entry, due: float) -> None: ...

    async def done(self, message_id: str) -> None: ...


class MemoryOutbox:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, Entry]] = {}

    async def put(self, message_id: str, entry: Entry, due: float, limit: int) -> bool:
        if message_id not in self._entries and len(self._entries) >= limit:
            return False
        self._entries[message_id] = (due, entry)
        return True

    async def claim(self, now: float, lease_seconds: float, limit: int) -> list[tuple[str, Entry]]:
        due = sorted((at, message_id) for message_id, (at, _) in self._entries.items() if at <= now)[:limit]
        claimed = []
        for _, message_id in due:
            entry = self._entries[message_id][1]
            self._entries[message_id] = (now + lease_seconds, entry)
            claimed.append((message_id, entry))
        return claimed

    async def retry(self, message_id: str, entry: Entry, due: float) -> None:
        self._entries[message_id] = (due, entry)

    async def done(self, message_id: str) -> None:
        self._entries.pop(message_id, None)


# Only commands the stack's store user is granted (stacks/aws/store_access.py: scripts may run HGET,
# HSET, ZADD, ZCARD, ZRANGE; the client HDEL, ZREM).
# KEYS: the entries' hash, the due times' sorted set. ARGV: id, entry (JSON), due, limit.
_PUT = """
if not redis.call('HGET', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
"""
# KEYS: as above. ARGV: now, the lease's end, limit. Returns id, entry, id, entry...
# A due time whose entry is gone (a replica died between removing the two) is moved past any claim.
_CLAIM = """
local ids = redis.call('ZRANGE', KEYS[2], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[3]))
local claimed = {}
for _, id in ipairs(ids) do
  local entry = redis.call('HGET', KEYS[1], id)
  if entry then
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    table.insert(claimed, id)
    table.insert(claimed, entry)
  else
    redis.call('ZADD', KEYS[2], '+inf', id)
  end
end
return claimed
"""


class StoreOutbox:
    """The replicas' outbox. A store that does not answer raises `StoreUnavailable` (the deliverer
    keeps the event in its own memory meanwhile)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._keys = [store.key("webhooks", "outbox"), store.key("webhooks", "due")]
        self._put = store.redis.register_script(_PUT)
        self._claim = store.redis.register_script(_CLAIM)

    async def put(self, message_id: str, entry: Entry, due: float, limit: int) -> bool:
        args: list[str | float | int] = [message_id, json.dumps(entry, separators=(",", ":")), due, limit]
        return bool(await self._store.call(lambda: self._put(keys=self._keys, args=args)))

    async def claim(self, now: float, lease_seconds: float, limit: int) -> list[tuple[str, Entry]]:
        args: list[float | int] = [now, now + lease_seconds, limit]
        flat = await self._store.call(lambda: self._claim(keys=self._keys, args=args))
        return [(str(flat[i]), json.loads(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def retry(self, message_id: str, entry: Entry, due: float) -> None:
        await self.put(message_id, entry, due, limit=2**31)  # already counted in

    async def done(self, message_id: str) -> None:
        await self._store.call(lambda: self._store.redis.hdel(self._keys[0], message_id))
        await self._store.call(lambda: self._store.redis.zrem(self._keys[1], message_id))


def webhook_outbox(coordination: object) -> Outbox:
    """The store's outbox when the replicas share one (`REDIS_URL`), else this process's memory."""
    store = getattr(coordination, "store", None)
    return StoreOutbox(store) if isinstance(store, Store) else MemoryOutbox()
