"""The store's records of a claim that may never have landed, as the reserve's sweep reads and writes them
(dispatcher/reserve/stranded.py judges them).

`claim:<bot id>` names the session, `claimed-at:<bot id>` when it was taken (store/claims.py), both read
in one step with the store's clock, so a claim's age and the session's events are put side by side on
one clock, never a replica's. `abandoned:<bot id>` (`<ms> <session id>`, an hour) is when a sweep,
at any replica, first found that claim abandoned; a sweep that finds it alive deletes it, and only a
verdict held long enough retires the machine. A retirement hands `claim:<bot id>` from the session it
judged to the reserve's mark in one compare-and-set, its expiry kept: a claim given back and taken by
another session since is never retired. `link:<machine id>` is a replica's hold of the bot's channel
(store/claims.py). Nothing here is forgiven: the caller keeps the machine while the store is silent.
"""

from __future__ import annotations

from dispatcher.store.claims import BotClaims
from dispatcher.store.client import Store
from dispatcher.store.coordination import RETIRING, ClaimRecord
from dispatcher.store.leases import Leases

ABANDONED_RECORD_SECONDS = 3600  # far past a verdict's wait: a lapsed one starts the wait again

# KEYS: claim:<bot>, claimed-at:<bot>. The claim's session, its `claimed-at` value ('' for none), the
# store's time in ms.
_RECORD = """
local session = redis.call('GET', KEYS[1])
if not session then
  return false
end
local t = redis.call('TIME')
return {session, redis.call('GET', KEYS[2]) or '', t[1] .. string.format('%03d', math.floor(t[2] / 1000))}
"""
# KEYS: abandoned:<bot>. ARGV: the session, the record's life (s). Milliseconds since the first verdict
# for this session (0: this one is the first, recorded now).
_ABANDONED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seen = redis.call('GET', KEYS[1])
if seen then
  local since, session = string.match(seen, '^(%d+) (.*)$')
  if session == ARGV[1] then
    return now - tonumber(since)
  end
end
redis.call('SET', KEYS[1], t[1] .. string.format('%03d', math.floor(t[2] / 1000)) .. ' ' .. ARGV[1], 'EX', ARGV[2])
return 0
"""


class StoreStrandedClaims:
    def __init__(self, store: Store, leases: Leases, claims: BotClaims) -> None:
        self._store = store
        self._leases = leases
        self._claims = claims
        self.owner_lease_seconds = store.settings.lease_seconds  # store/owners.py writes them for as long
        self._record = store.redis.register_script(_RECORD)
        self._abandoned = store.redis.register_script(_ABANDONED)

    async def record(self, bot_id: str) -> ClaimRecord | None:
        keys = [self._store.key("claim", bot_id), self._store.key("claimed-at", bot_id)]
        found = await self._store.call(lambda: self._record(keys=keys))
        if not found:
            return None
        session_id, claimed, now = (_text(value) for value in found)
        at, _, named = claimed.partition(" ")
        # A time written for another claim of the bot (a retirement's given back) is not this claim's.
        claimed_at = int(at) / 1000 if named == session_id and at.isdigit() else None
        return ClaimRecord(session_id, claimed_at, int(now) / 1000)

    async def link_held(self, machine_id: str) -> bool:
        return bool(await self._claims.links_held([machine_id]))

    async def abandoned_for(self, bot_id: str, session_id: str) -> float:
        key = self._store.key("abandoned", bot_id)
        args: list[str | int] = [session_id, ABANDONED_RECORD_SECONDS]
        return int(await self._store.call(lambda: self._abandoned(keys=[key], args=args))) / 1000

    async def not_abandoned(self, bot_id: str) -> None:
        key = self._store.key("abandoned", bot_id)
        await self._store.call(lambda: self._store.redis.delete(key))

    async def retire(self, bot_id: str, session_id: str) -> bool:
        return await self._leases.hand_over(self._store.key("claim", bot_id), session_id, RETIRING)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
