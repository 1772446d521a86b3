"""What each API key used of its budgets, for the whole deployment: its sessions open now (each with
when it started) and its minutes and spend by period (`minutes:day:2026-11-27`, `dollars:month:2026-11`).

A start is opened in the background once admitted and closed by whichever replica sees the
session end (its stop, its bot's end, its machine's end), which adds its minutes and spend to the
periods it ended in: opening and closing are one step each, so a session is counted once however
many replicas see its end. An end seen before its open was taken (the opening replica's store call
held back by an outage, or slower than a crash's end at another replica) is kept a day at the
session: the open, when it comes, adds the session's use then and opens nothing, so no session stays
open for good counting against its key. The replicas read the budgeted keys' usage once a second
(dispatcher/sessions/budget_usage.py): a start checks what was read, with no store call of its own.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Protocol

from dispatcher.store.client import Store
from dispatcher.store.together import together

KEEP_SECONDS = 40 * 86_400  # a period's usage outlives its month; a session open this long is forgotten
# How long a session's end is kept for an open that has not come yet (one key per session ended in
# that time, ~100 bytes each): a replica holds an open it could not write for as long as the store is
# down, and an outage past a day is an incident in its own right.
ENDED_KEEP_SECONDS = 86_400
# A session's services are added once: its mark outlives the usage rollups' own (three days), so an
# end reported again while its timeline is still read cannot add them twice.
SPENT_MARK_SECONDS = 3 * 86_400
MEMORY_ENDED_KEPT = 10_000
# Only the commands the store's user is granted (stacks/shared/store_access.py): a sum is a read and a
# write of its field, within the script, so no other replica's write comes between them.
# An open whose session has ended already (KEYS[3], a hash, holds its `end`, `dollars` and period
# fields) adds its use to its usage hash (KEYS[4]) instead, as a close would have; one after a close
# (`counted`) does nothing. Its loop is over the hash's reply, as every loop here is bounded.
_OPEN = """
if redis.call('HGET', KEYS[3], 'counted') then return 0 end
local end_at = redis.call('HGET', KEYS[3], 'end')
if end_at then
  local dollars = tonumber(redis.call('HGET', KEYS[3], 'dollars') or '0')
  local seconds = math.max(0, tonumber(end_at) - tonumber(ARGV[2]))
  local ended = redis.call('HGETALL', KEYS[3])
  for i = 1, #ended, 2 do
    local field, unit = ended[i], ended[i + 1]
    if field ~= 'end' and field ~= 'dollars' then
      local amount = seconds / 60
      if unit == 'dollars' then amount = seconds * dollars end
      local before = tonumber(redis.call('HGET', KEYS[4], field) or '0')
      redis.call('HSET', KEYS[4], field, tostring(before + amount))
    end
  end
  redis.call('PEXPIRE', KEYS[4], ARGV[4])
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[3], 'counted', '1')
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
return 1
"""
# The end of a session no open holds: the key it is open for, if its open came in between (the
# caller closes it then), else its end kept (ARGV[1]: its life in ms; then `end`, `dollars` and each
# period field with its unit, as pairs) for its open, unless one is kept already.
_ENDED = """
local owner = redis.call('GET', KEYS[1])
if owner then return owner end
if not redis.call('HGET', KEYS[2], 'end') and not redis.call('HGET', KEYS[2], 'counted') then
  redis.call('HSET', KEYS[2], unpack(ARGV, 2))
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
return false
"""
# Closes a session: its start is taken out of the open hash and, if it was there, its seconds (to
# ARGV[1], the end) turn into minutes, or dollars at ARGV[2] a second, added to each period field given.
_CLOSE = """
local started = redis.call('HGET', KEYS[1], ARGV[3])
if not started then return false end
redis.call('HDEL', KEYS[1], ARGV[3])
redis.call('DEL', KEYS[3])
redis.call('DEL', KEYS[4])
redis.call('HSET', KEYS[4], 'counted', '1')
redis.call('PEXPIRE', KEYS[4], ARGV[5])
local seconds = math.max(0, tonumber(ARGV[1]) - tonumber(started))
for i = 6, #ARGV, 2 do
  local amount = seconds / 60
  if ARGV[i + 1] == 'dollars' then amount = seconds * tonumber(ARGV[2]) end
  local before = tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0')
  redis.call('HSET', KEYS[2], ARGV[i], tostring(before + amount))
end
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return tostring(seconds)
"""
# A session's services' spend (its bot's LLM, TTS and STT, priced), added once to its key's usage
# hash (KEYS[2]) whichever replicas add it: KEYS[1] marks it added (ARGV[3]: the mark's life in ms).
# ARGV[1]: the dollars; ARGV[2]: the hash's life in ms; then each field to add them to.
_SPENT = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[3]) then return 0 end
for i = 4, #ARGV do
  local before = tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0')
  redis.call('HSET', KEYS[2], ARGV[i], tostring(before + tonumber(ARGV[1])))
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"""
# Each key's (open hash, usage hash) pair: its sessions open with their starts' sum, and its usage
# fields, flat. The sum is a string: a script's numbers reach the client as integers.
_READ = """
local found = {}
for i = 1, #KEYS, 2 do
  local open = redis.call('HGETALL', KEYS[i])
  local since = 0
  for j = 2, #open, 2 do since = since + (tonumber(open[j]) or 0) end
  found[#found + 1] = #open / 2
  found[#found + 1] = string.format('%.3f', since)
  found[#found + 1] = redis.call('HGETALL', KEYS[i + 1])
end
return found
"""


class BudgetLedger(Protocol):
    async def open(self, key: str, session_id: str, at: float) -> None: ...

    async def owner(self, session_id: str) -> str | None:
        """The key an open session is counted for (None: not open, or closed already)."""
        ...

    async def close(self, key: str, session_id: str, at: float, dollars_per_second: float,
                    fields: Mapping[str, str]) -> float | None:
        """Closes the session (None: not open, or closed already) and adds its use to each field
        (field → "minutes" or "dollars"); its seconds. An open of it after this opens nothing."""
        ...

    async def ended(self, session_id: str, at: float, dollars_per_second: float,
                    fields: Mapping[str, str]) -> str | None:
        """The end of a session `owner` found no open for: the key it is open for if its open was
        taken since (close it then), else None, its end kept so that its open counts it at once."""
        ...

    async def first(self, what: str, seconds: float) -> bool:
        """True the first time any replica asks about `what` within `seconds`."""
        ...

    async def spent(self, key: str, session_id: str, dollars: float, fields: Iterable[str]) -> bool:
        """Adds a session's services' `dollars` to each of `fields`, once per session (True: added here)."""
        ...

    async def read(self, keys: Iterable[str]) -> dict[str, dict[str, float]]:
        """Each key's fields, its sessions open now (`sessions`) and the sum of their starts
        (`open_since`, epoch seconds): what they have run so far counts before they end."""
        ...


class MemoryBudgetLedger:
    """One replica: the ledger in its memory."""

    def __init__(self) -> None:
        self._open: dict[str, dict[str, float]] = {}
        self._owners: dict[str, str] = {}
        self._used: dict[str, dict[str, float]] = {}
        self._seen: set[str] = set()
        self._spent: OrderedDict[str, None] = OrderedDict()  # sessions whose services' spend is added
        # Ends no open held yet, the newest kept: in one process an open is taken before its end.
        self._ended: OrderedDict[str, tuple[float, float, Mapping[str, str]]] = OrderedDict()

    async def open(self, key: str, session_id: str, at: float) -> None:
        end = self._ended.pop(session_id, None)
        if end is not None:
            self._add(key, max(0.0, end[0] - at), end[1], end[2])
            return
        self._open.setdefault(key, {})[session_id] = at
        self._owners[session_id] = key

    async def ended(self, session_id: str, at: float, dollars_per_second: float,
                    fields: Mapping[str, str]) -> str | None:
        if session_id in self._owners:
            return self._owners[session_id]
        self._ended.setdefault(session_id, (at, dollars_per_second, dict(fields)))
        while len(self._ended) > MEMORY_ENDED_KEPT:
            self._ended.popitem(last=False)
        return None

    async def owner(self, session_id: str) -> str | None:
        return self._owners.get(session_id)

    async def first(self, what: str, seconds: float) -> bool:
        found = what in self._seen
        self._seen.add(what)
        return not found

    async def spent(self, key: str, session_id: str, dollars: float, fields: Iterable[str]) -> bool:
        if session_id in self._spent:
            return False
        self._spent[session_id] = None
        while len(self._spent) > MEMORY_ENDED_KEPT:
            self._spent.popitem(last=False)
        used = self._used.setdefault(key, {})
        for field in fields:
            used[field] = used.get(field, 0.0) + dollars
        return True

    async def close(self, key: str, session_id: str, at: float, dollars_per_second: float,
                    fields: Mapping[str, str]) -> float | None:
        started = self._open.get(key, {}).pop(session_id, None)
        self._owners.pop(session_id, None)
        if started is None:
            return None
        seconds = max(0.0, at - started)
        self._add(key, seconds, dollars_per_second, fields)
        return seconds

    def _add(self, key: str, seconds: float, dollars_per_second: float, fields: Mapping[str, str]) -> None:
        used = self._used.setdefault(key, {})
        for field, unit in fields.items():
            used[field] = used.get(field, 0.0) + (seconds * dollars_per_second if unit == "dollars" else seconds / 60)

    async def read(self, keys: Iterable[str]) -> dict[str, dict[str, float]]:
        return {key: {**self._used.get(key, {}), "sessions": float(len(self._open.get(key, {}))),
                      "open_since": sum(self._open.get(key, {}).values())} for key in keys}


class StoreBudgetLedger:
    """Several replicas: the ledger in the store, a hash of open sessions and one of usage per key."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._open = store.redis.register_script(_OPEN)
        self._close = store.redis.register_script(_CLOSE)
        self._read = store.redis.register_script(_READ)
        self._ended = store.redis.register_script(_ENDED)
        self._spent = store.redis.register_script(_SPENT)

    def _keys(self, key: str) -> list[str]:
        return [self._store.key("budget", "open", key), self._store.key("budget", "used", key)]

    def _owner_key(self, session_id: str) -> str:
        return self._store.key("budget", "owner", session_id)

    def _ended_key(self, session_id: str) -> str:
        return self._store.key("budget", "ended", session_id)

    async def open(self, key: str, session_id: str, at: float) -> None:
        open_hash, used_hash = self._keys(key)
        keys = [open_hash, self._owner_key(session_id), self._ended_key(session_id), used_hash]
        args = [session_id, repr(at), key, str(KEEP_SECONDS * 1000), str(ENDED_KEEP_SECONDS * 1000)]
        # It goes with the launch's record the start writes as its admission ends (one round trip).
        await together(self._store).run(self._open, keys, args)

    async def ended(self, session_id: str, at: float, dollars_per_second: float,
                    fields: Mapping[str, str]) -> str | None:
        keys = [self._owner_key(session_id), self._ended_key(session_id)]
        args = [str(ENDED_KEEP_SECONDS * 1000), "end", repr(at), "dollars", repr(dollars_per_second)]
        for field, unit in fields.items():
            args += [field, unit]
        found = await self._store.call(lambda: self._ended(keys=keys, args=args))
        return None if found is None else str(found)

    async def owner(self, session_id: str) -> str | None:
        found = await self._store.call(lambda: self._store.redis.get(self._owner_key(session_id)))
        return None if found is None else str(found)

    async def first(self, what: str, seconds: float) -> bool:
        key = self._store.key("budget", "told", what)
        return bool(await self._store.call(lambda: self._store.redis.set(key, "1", nx=True, ex=max(1, int(seconds)))))

    async def spent(self, key: str, session_id: str, dollars: float, fields: Iterable[str]) -> bool:
        keys = [self._store.key("budget", "spent", session_id), self._keys(key)[1]]
        args = [repr(dollars), str(KEEP_SECONDS * 1000), str(SPENT_MARK_SECONDS * 1000), *fields]
        return bool(await self._store.call(lambda: self._spent(keys=keys, args=args)))

    async def close(self, key: str, session_id: str, at: float, dollars_per_second: float,
                    fields: Mapping[str, str]) -> float | None:
        args: list[str] = [repr(at), repr(dollars_per_second), session_id, str(KEEP_SECONDS * 1000),
                           str(ENDED_KEEP_SECONDS * 1000)]
        for field, unit in fields.items():
            args += [field, unit]
        keys = [*self._keys(key), self._owner_key(session_id), self._ended_key(session_id)]
        answer = await self._store.call(lambda: self._close(keys=keys, args=args))
        return None if answer is None else float(answer)

    async def read(self, keys: Iterable[str]) -> dict[str, dict[str, float]]:
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        flat_keys = [name for key in wanted for name in self._keys(key)]
        answers = await self._store.call(lambda: self._read(keys=flat_keys))
        found: dict[str, dict[str, float]] = {}
        for n, key in enumerate(wanted):
            count, since, used = answers[3 * n], answers[3 * n + 1], answers[3 * n + 2]
            pairs = list(used) if isinstance(used, list) else []
            fields: dict[str, float] = {}
            for field, value in zip(pairs[::2], pairs[1::2], strict=True):
                with contextlib.suppress(ValueError):
                    fields[str(field)] = float(value)
            found[key] = {**fields, "sessions": float(count) if isinstance(count, int) else 0.0,
                          "open_since": _number(since)}
        return found


def _number(text: object) -> float:
    try:
        return float(str(text))
    except ValueError:
        return 0.0


def budget_ledger(coordination: object) -> BudgetLedger:
    """The store's ledger when the replicas share one (`REDIS_URL`), else this process's memory."""
    store = getattr(coordination, "store", None)
    return StoreBudgetLedger(store) if isinstance(store, Store) else MemoryBudgetLedger()
