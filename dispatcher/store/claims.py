"""Idle bots offered once: `claim:<bot id>` is taken before a replica assigns a bot a session.

A bot's channel ends at one replica, which takes it from its pool in one synchronous step, and
the bot accepts one assignment ever; the claim record makes the rule explicit across replicas
(a bot that re-dialled and is idle at two replicas for an instant is still offered once) and
leaves a trace of which session took which bot.

The claim record is also the bot's binding to its session at every replica: a claimed bot that
dials again at another one (its replica drained or died) is admitted there for that session only,
and a claim that fails removes it. It lives no longer than the bot's credential.

`admitted:<bot id>` makes an idle credential's first hello the only one, across replicas (set if
absent, for the credential's remaining life).

`thaw:<bot id>` is a frozen bot's way back: written before its machine is thawed, it names who
waits for the bot (a claim's replica, or the reserve's hot tier), and the first idle hello at any
replica spends it, as does the thaw's deadline: whichever comes first, the other finds it gone.

`link:`/`linkkey:<machine id>`: an identity-only bot's one channel and its resume key (docs/replicas.md).

`hello:<bot id>` records which replica an idle bot dialled: through a load balancer it may not be
the one that launched it, and the launcher then stops waiting for it instead of retiring it as
never connected.
"""

from __future__ import annotations

import math
import time
from typing import cast

from dispatcher.store.client import Store
from dispatcher.store.coordination import LinkAdmission
from dispatcher.store.leases import Leases, milliseconds

CLAIM_SECONDS = 24 * 3600  # longer than any session; a claimed bot never becomes idle again
HELLO_SECONDS = 3600  # longer than a bot waits for its hello to be noticed
FIRST_KEY_SECONDS = 90  # a resume key not yet kept: past the minute a dropped bot dials again
# KEYS: claim:<bot>, claimed-at:<bot>. ARGV: the session, the record's life (s). Taken, or already this
# session's (a claim tried again): when, on the store's clock, is written in the same step (`<ms> <session>`),
# for the reserve's sweep of claims that never landed (store/stranded_claims.py).
_CLAIM = """
local taken = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2])
if not taken and redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local t = redis.call('TIME')
redis.call('SET', KEYS[2], t[1] .. string.format('%03d', math.floor(t[2] / 1000)) .. ' ' .. ARGV[1], 'EX', ARGV[2])
return 1
"""
_TAKE = """
local value = redis.call('GET', KEYS[1])
if value then redis.call('DEL', KEYS[1]) end
return value
"""

# KEYS: link:<machine> (the replica holding its channel), linkkey:<machine> (its resume key's digest).
# ARGV: this replica, the presented digest ('' for none), a new digest, the hold's, the key's and a
# first key's ms.
# A first key lives ARGV[6] ms (past a dropped bot's minute of dialling again) until the bot's link is
# kept once (its welcome reached it); then ARGV[5].
# A key presented for a pod with none stored is never adopted: the live link's keeper restores it.
_ADMIT = """
local holder = redis.call('GET', KEYS[1])
local key = redis.call('GET', KEYS[2])
if key == false then
  if ARGV[2] ~= '' then return 'refused' end
  if holder ~= false and holder ~= ARGV[1] then return 'elsewhere' end
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[6])
  return 'first'
end
if ARGV[2] == '' or ARGV[2] ~= key then return 'refused' end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 'resumed'
"""
# ARGV: this replica, the link's key digest, the hold's and the key's ms. A lapsed hold is taken back
# while the key is still the link's (nobody resumed elsewhere meanwhile).
# A key the store lost (a failover) is written back from the link that holds it.
_KEEP = """
local holder = redis.call('GET', KEYS[1])
local key = redis.call('GET', KEYS[2])
if (key ~= false and key ~= ARGV[2]) or (holder ~= false and holder ~= ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[4])
return 1
"""


class BotClaims:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._leases = Leases(store)  # compare-and-delete, read
        self._claim = store.redis.register_script(_CLAIM)
        self._take = store.redis.register_script(_TAKE)  # GET and DEL in one step (no GETDEL in the ACL)
        self._admit = store.redis.register_script(_ADMIT)
        self._keep = store.redis.register_script(_KEEP)

    async def claim(self, bot_id: str, session_id: str, until: int | None = None) -> bool:
        """True if this call claimed the bot for `session_id` (or had already); the record lasts
        until `until` (Unix seconds: when the bot's credential expires), never past CLAIM_SECONDS."""
        keys = [self._store.key("claim", bot_id), self._store.key("claimed-at", bot_id)]
        seconds = CLAIM_SECONDS if until is None else _remaining(until, CLAIM_SECONDS)
        return bool(await self._store.call(lambda: self._claim(keys=keys, args=[session_id, seconds])))

    async def claimed_for(self, bot_id: str) -> str | None:
        """The session that claimed `bot_id`, if any."""
        return await self._leases.holder(self._store.key("claim", bot_id))

    async def unclaim(self, bot_id: str, session_id: str) -> None:
        """The claim for `session_id` failed: the bot is bound to it nowhere (never another's claim)."""
        await self._leases.release(self._store.key("claim", bot_id), session_id)

    async def admit_once(self, bot_id: str, until: int) -> bool:
        """True for the first idle hello of `bot_id`'s credential at any replica; remembered until
        the credential expires (`until`, Unix seconds), when it can no longer be presented."""
        key = self._store.key("admitted", bot_id)
        seconds = _remaining(until, CLAIM_SECONDS)
        return bool(await self._store.call(lambda: self._store.redis.set(key, self._store.replica_id, nx=True,
                                                                          ex=seconds)))

    async def expect_back(self, bot_id: str, waiter: str, seconds: float) -> None:
        key = self._store.key("thaw", bot_id)
        await self._store.call(lambda: self._store.redis.set(key, waiter, ex=max(1, math.ceil(seconds))))

    async def welcome_back(self, bot_id: str) -> str | None:
        key = self._store.key("thaw", bot_id)
        value = await self._store.call(lambda: self._take(keys=[key]))
        return None if value is None else str(value)

    async def admit_link(self, machine_id: str, presented: str | None, new: str, hold_seconds: float,
                         key_seconds: float) -> LinkAdmission:
        keys = [self._store.key("link", machine_id), self._store.key("linkkey", machine_id)]
        args: list[str | int] = [self._store.replica_id, presented or "", new, milliseconds(hold_seconds),
                                 milliseconds(key_seconds), milliseconds(FIRST_KEY_SECONDS)]
        answer = await self._store.call(lambda: self._admit(keys=keys, args=args))
        return cast(LinkAdmission, str(answer))

    async def keep_link(self, machine_id: str, key: str, hold_seconds: float, key_seconds: float) -> bool:
        keys = [self._store.key("link", machine_id), self._store.key("linkkey", machine_id)]
        args: list[str | int] = [self._store.replica_id, key, milliseconds(hold_seconds), milliseconds(key_seconds)]
        return bool(await self._store.call(lambda: self._keep(keys=keys, args=args)))

    async def let_go_link(self, machine_id: str) -> None:
        await self._leases.release(self._store.key("link", machine_id), self._store.replica_id)

    async def hello(self, bot_id: str) -> None:
        key = self._store.key("hello", bot_id)
        await self._store.call(lambda: self._store.redis.set(key, self._store.replica_id, ex=HELLO_SECONDS))

    async def greeted(self, bot_ids: list[str]) -> set[str]:
        """Those of `bot_ids` that said hello at some replica."""
        return await self._recorded("hello", bot_ids)

    async def links_held(self, machine_ids: list[str]) -> set[str]:
        """Those of `machine_ids` whose channel a replica holds now (`link:`, renewed while connected)."""
        return await self._recorded("link", machine_ids)

    async def claimed_among(self, bot_ids: list[str]) -> set[str]:
        """Those of `bot_ids` a session has claimed."""
        return await self._recorded("claim", bot_ids)

    async def _recorded(self, kind: str, bot_ids: list[str]) -> set[str]:
        """Those of `bot_ids` with a `<kind>:<bot id>` record, in one read."""
        if not bot_ids:
            return set()
        keys = [self._store.key(kind, bot_id) for bot_id in bot_ids]
        found = await self._store.call(lambda: self._store.redis.mget(keys))
        return {bot_id for bot_id, value in zip(bot_ids, found, strict=True) if value is not None}


def _remaining(until: int, longest: int) -> int:
    """Whole seconds left until `until`, at least 1, at most `longest`."""
    return max(1, min(longest, math.ceil(until - time.time())))
