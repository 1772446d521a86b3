"""Who holds a session's bot: `owner:<session id>` → the replica whose channel the bot dialled.

Written when a bot says hello with its session (a cold bot, or one that re-dialled after a
deploy) and when a replica claims an idle bot for a session; the newest writer wins, because the
newest channel is the live one. The owner renews its sessions' records with its heartbeat
(LiveKit keeps a room → node map the same way), so a replica killed outright stops owning them
one lease later; a replica that drains lets go at once. A replica that receives a session's
signalling and does not own it relays it to the owner (dispatcher/store/relay.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from dispatcher.store.client import Store
from dispatcher.store.leases import Leases

RENEW_BATCH = 500  # sessions renewed per round trip

# Renews each key this replica holds; never one another replica took over meanwhile. At most
# RENEW_BATCH keys a call, checked in the script: the store runs one script at a time, and a call
# with millions of keys (anyone holding the store's credential may send one) would have it answer
# BUSY to every replica while it ran.
_RENEW_MANY = f"""
if #KEYS > {RENEW_BATCH} then
  return redis.error_reply('at most {RENEW_BATCH} keys a renewal')
end
local renewed = {{}}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    renewed[i] = 1
  else
    renewed[i] = 0
  end
end
return renewed
"""


class Owners:
    def __init__(self, store: Store, leases: Leases) -> None:
        self._store = store
        self._leases = leases
        self._seconds = store.settings.lease_seconds
        self._renew_many = store.redis.register_script(_RENEW_MANY)

    def _key(self, session_id: str) -> str:
        return self._store.key("owner", session_id)

    async def claim(self, session_id: str) -> None:
        await self._leases.put(self._key(session_id), self._store.replica_id, self._seconds)

    async def reclaim(self, session_id: str) -> None:
        """Claims the session back only if no replica holds it: a record that ran out while the
        store was unreachable, never one a newer channel at another replica wrote meanwhile."""
        await self._leases.take(self._key(session_id), self._store.replica_id, self._seconds)

    async def release(self, session_id: str) -> None:
        await self._leases.release(self._key(session_id), self._store.replica_id)

    async def owner_of(self, session_id: str) -> str | None:
        return await self._leases.holder(self._key(session_id))

    async def renew(self, session_ids: Iterable[str]) -> list[str]:
        """Renews this replica's records of `session_ids`; returns those it no longer owns
        (another replica took over, their bot having re-dialled there, or the record ran out)."""
        ids = list(session_ids)
        lost: list[str] = []
        ms = max(1, int(self._seconds * 1000))
        for start in range(0, len(ids), RENEW_BATCH):
            batch = ids[start:start + RENEW_BATCH]
            keys = [self._key(s) for s in batch]
            renewed = await self._store.call(
                lambda k=keys: self._renew_many(keys=k, args=[self._store.replica_id, ms])  # type: ignore[misc]
            )
            lost += [s for s, ok in zip(batch, renewed, strict=True) if not ok]
        return lost
