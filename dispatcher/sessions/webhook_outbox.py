"""Where lifecycle webhooks wait until delivered: with several replicas, in the store, so an event is
delivered even when the replica that saw it dies before its receiver answered.

A replica's deliverer claims due entries by moving their due time a lease ahead in one step; a
delivered entry is removed, a failed one rescheduled, and a replica that dies holding a claim only
delays its entries by the lease. Delivery is therefore at least once, and the message id (the same
on every delivery) is how a receiver drops a repeat. One process keeps entries in memory
(`MemoryOutbox`); several replicas in the store (`StoreOutbox`: `webhooks:outbox` and
`webhooks:due`), each entry sealed (message_seal.py) so whoever may write the store cannot get an
event out under the deployment's webhook key; an entry that does not open, is of an unknown kind
or has expired is removed, counted and logged. Both keys expire once nothing was written for an
entry's lifetime. docs/operations.md ("Lifecycle webhooks across replicas").
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any, Protocol

from dispatcher.store.client import Store, StoreUnavailable
from dispatcher.store.message_seal import MessageSeal

log = logging.getLogger("dispatcher.sessions.webhooks")

Entry = dict[str, Any]  # {"kind", "data", "attempts", "expires"}
KINDS = frozenset({"session.started", "session.ready", "session.ended", "session.failed",  # what is pushed
                   "session.recording.ready", "session.recording.partial", "session.transferred"})
# A release's events (release_watch.py, smoke_watch.py): no session's, so they name their release instead.
RELEASE_KINDS = frozenset({"release.rolled_back", "release.smoke_passed", "release.smoke_failed"})
# A key's budget crossed (budget_usage.py): they name the key.
KEY_KINDS = frozenset({"key.budget.warning", "key.budget.reached"})
# A campaign's last row settled (dispatcher/campaigns/worker.py): it names the campaign.
CAMPAIGN_KINDS = frozenset({"campaign.finished"})
REFUSED_AS = "webhooks.outbox"  # its refusals' label in the store messages' refusal count


class Outbox(Protocol):
    async def put(self, message_id: str, entry: Entry, due: float, limit: int, keep_seconds: float) -> bool:
        """Adds an entry (replacing one with the same id); False when `limit` are waiting already.
        `keep_seconds`: how long an entry may live (the same for every entry)."""
        ...

    async def claim(self, now: float, lease_seconds: float, limit: int) -> list[tuple[str, Entry]]:
        """Up to `limit` entries due by `now`, each now held for `lease_seconds`."""
        ...

    async def retry(self, message_id: str, entry: Entry, due: float, keep_seconds: float) -> None: ...

    async def done(self, message_id: str) -> None: ...


class MemoryOutbox:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, Entry]] = {}

    async def put(self, message_id: str, entry: Entry, due: float, limit: int, keep_seconds: float) -> bool:
        if message_id not in self._entries and len(self._entries) >= limit:
            return False
        self._entries[message_id] = (due, entry)
        return True

    async def claim(self, now: float, lease_seconds: float, limit: int) -> list[tuple[str, Entry]]:
        # An entry past its `expires` is dropped, as the store's is: whatever kept it from being
        # delivered, it must not stay for the life of the process counting against the limit.
        for message_id in [m for m, (_, entry) in self._entries.items() if not entry.get("expires", now) >= now]:
            del self._entries[message_id]
            log.warning("webhook %s dropped: not delivered within its time", message_id)
        due = sorted((at, message_id) for message_id, (at, _) in self._entries.items() if at <= now)[:limit]
        claimed = []
        for _, message_id in due:
            entry = self._entries[message_id][1]
            self._entries[message_id] = (now + lease_seconds, entry)
            claimed.append((message_id, entry))
        return claimed

    async def retry(self, message_id: str, entry: Entry, due: float, keep_seconds: float) -> None:
        self._entries[message_id] = (due, entry)

    async def done(self, message_id: str) -> None:
        self._entries.pop(message_id, None)


# Only commands the stack's store user is granted (stacks/shared/store_access.py: scripts may run HDEL,
# HGET, HSET, PEXPIRE, ZADD, ZCARD, ZRANGE, and ZREM, which the client is granted).
# KEYS: the entries' hash, the due times' sorted set. ARGV: id, entry (sealed), due, limit, keep (ms).
_PUT = """
if not redis.call('HGET', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1
"""
# KEYS: as above. ARGV: now, the lease's end, limit. Returns id, entry, id, entry...
# A due time whose entry is gone (written by an older version, or the hash expired) is removed:
# kept, it would count against the limit for good.
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
    redis.call('ZREM', KEYS[2], id)
  end
end
return claimed
"""
# KEYS: as above. ARGV: id. Both or neither: a due time never outlives its entry.
_DONE = """
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""


class StoreOutbox:
    """The replicas' outbox. A store that does not answer raises `StoreUnavailable` (the deliverer
    keeps the event in its own memory meanwhile)."""

    def __init__(self, store: Store, seal: MessageSeal) -> None:
        self._store = store
        self._seal = seal
        self._keys = [store.key("webhooks", "outbox"), store.key("webhooks", "due")]
        self._put = store.redis.register_script(_PUT)
        self._claim = store.redis.register_script(_CLAIM)
        self._done = store.redis.register_script(_DONE)

    async def put(self, message_id: str, entry: Entry, due: float, limit: int, keep_seconds: float) -> bool:
        record = json.dumps(entry, separators=(",", ":")).encode()
        sealed = self._seal.seal_record(self._where(message_id), record).decode()
        args: list[str | float | int] = [message_id, sealed, due, limit, math.ceil(keep_seconds * 1000)]
        return bool(await self._store.call(lambda: self._put(keys=self._keys, args=args)))

    async def claim(self, now: float, lease_seconds: float, limit: int) -> list[tuple[str, Entry]]:
        args: list[float | int] = [now, now + lease_seconds, limit]
        flat = await self._store.call(lambda: self._claim(keys=self._keys, args=args))
        claimed = []
        for i in range(0, len(flat), 2):
            message_id = str(flat[i])
            entry = self._opened(message_id, str(flat[i + 1]), now)
            if entry is not None:
                claimed.append((message_id, entry))
                continue
            try:  # never delivered, nor counted against the limit; the rest of the batch goes on
                await self.done(message_id)
            except StoreUnavailable:  # still leased: met (and removed) again once the lease is over
                log.warning("webhooks: a refused outbox entry stays until the store answers")
        return claimed

    async def retry(self, message_id: str, entry: Entry, due: float, keep_seconds: float) -> None:
        await self.put(message_id, entry, due, limit=2**31, keep_seconds=keep_seconds)  # already counted in

    async def done(self, message_id: str) -> None:
        await self._store.call(lambda: self._done(keys=self._keys, args=[message_id]))

    def _where(self, message_id: str) -> str:
        return f"{self._keys[0]} {message_id}"

    def _opened(self, message_id: str, sealed: str, now: float) -> Entry | None:
        """The entry a replica sealed under `message_id`, still to be delivered; else None (counted)."""
        record = self._seal.open_record(REFUSED_AS, self._where(message_id), sealed.encode())
        if record is None:
            return None
        try:
            entry = _well_formed(json.loads(record))
        except ValueError:
            entry = None
        if entry is None:
            self._seal.refuse_record(REFUSED_AS, "malformed")
            return None
        if entry["expires"] < now:
            self._seal.refuse_record(REFUSED_AS, "stale")
            return None
        return entry


def _well_formed(entry: object) -> Entry | None:
    """`entry` if it is a lifecycle event as the deliverer writes it."""
    if not isinstance(entry, dict) or entry.get("kind") not in KINDS | RELEASE_KINDS | KEY_KINDS | CAMPAIGN_KINDS:
        return None
    data, attempts, expires = entry.get("data"), entry.get("attempts"), entry.get("expires")
    kind = entry["kind"]
    named = ("session_id" if kind in KINDS else "key" if kind in KEY_KINDS
             else "campaign_id" if kind in CAMPAIGN_KINDS else "release")
    if not (isinstance(data, dict) and isinstance(data.get(named), str)):
        return None
    if type(attempts) is not int or attempts < 0 or not isinstance(expires, int | float) or isinstance(expires, bool):
        return None
    return entry if math.isfinite(expires) else None


def webhook_outbox(coordination: object) -> Outbox:
    """The store's outbox when the replicas share one (`REDIS_URL`), else this process's memory."""
    store, seal = getattr(coordination, "store", None), getattr(coordination, "seal", None)
    return StoreOutbox(store, seal) if isinstance(store, Store) and isinstance(seal, MessageSeal) else MemoryOutbox()
