"""What each API key used of its budgets, for the whole deployment: its sessions open now (each with
when it started) and its minutes and spend by period (`minutes:day:2026-11-27`, `dollars:month:2026-11`).

A start is opened in the background once admitted and closed by whichever replica sees the
session end (its stop, its bot's end, its machine's end), which adds its minutes and spend to the
periods it ended in: opening and closing are one step each, so a session is counted once however
many replicas see its end. The replicas read the budgeted keys' usage once a second
(dispatcher/sessions/budget_usage.py): a start checks what was read, with no store call of its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Protocol

from dispatcher.store.client import Store

KEEP_SECONDS = 40 * 86_400  # a period's usage outlives its month; a session open this long is forgotten
# Only the commands the store's user is granted (stacks/shared/store_access.py): a sum is a read and a
# write of its field, within the script, so no other replica's write comes between them.
_OPEN = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
return 1
"""
# Closes a session: its start is taken out of the open hash and, if it was there, its seconds (to
# ARGV[1], the end) turn into minutes, or dollars at ARGV[2] a second, added to each period field given.
_CLOSE = """
local started = redis.call('HGET', KEYS[1], ARGV[3])
if not started then return false end
redis.call('HDEL', KEYS[1], ARGV[3])
redis.call('DEL', KEYS[3])
local seconds = math.max(0, tonumber(ARGV[1]) - tonumber(started))
for i = 5, #ARGV, 2 do
  local amount = seconds / 60
  if ARGV[i + 1] == 'dollars' then amount = seconds * tonumber(ARGV[2]) end
  local before = tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0')
  redis.call('HSET', KEYS[2], ARGV[i], tostring(before + amount))
end
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return tostring(seconds)
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
        (field → "minutes" or "dollars"); its seconds."""
        ...

    async def first(self, what: str, seconds: float) -> bool:
        """True the first time any replica asks about `what` within `seconds`."""
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

    async def open(self, key: str, session_id: str, at: float) -> None:
        self._open.setdefault(key, {})[session_id] = at
        self._owners[session_id] = key

    async def owner(self, session_id: str) -> str | None:
        return self._owners.get(session_id)

    async def first(self, what: str, seconds: float) -> bool:
        found = what in self._seen
        self._seen.add(what)
        return not found

    async def close(self, key: str, session_id: str, at: float, dollars_per_second: float,
                    fields: Mapping[str, str]) -> float | None:
        started = self._open.get(key, {}).pop(session_id, None)
        self._owners.pop(session_id, None)
        if started is None:
            return None
        seconds = max(0.0, at - started)
        used = self._used.setdefault(key, {})
        for field, unit in fields.items():
            used[field] = used.get(field, 0.0) + (seconds * dollars_per_second if unit == "dollars" else seconds / 60)
        return seconds

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

    def _keys(self, key: str) -> list[str]:
        return [self._store.key("budget", "open", key), self._store.key("budget", "used", key)]

    def _owner_key(self, session_id: str) -> str:
        return self._store.key("budget", "owner", session_id)

    async def open(self, key: str, session_id: str, at: float) -> None:
        keys = [self._keys(key)[0], self._owner_key(session_id)]
        args = [session_id, repr(at), key, str(KEEP_SECONDS * 1000)]
        await self._store.call(lambda: self._open(keys=keys, args=args))

    async def owner(self, session_id: str) -> str | None:
        found = await self._store.call(lambda: self._store.redis.get(self._owner_key(session_id)))
        return None if found is None else str(found)

    async def first(self, what: str, seconds: float) -> bool:
        key = self._store.key("budget", "told", what)
        return bool(await self._store.call(lambda: self._store.redis.set(key, "1", nx=True, ex=max(1, int(seconds)))))

    async def close(self, key: str, session_id: str, at: float, dollars_per_second: float,
                    fields: Mapping[str, str]) -> float | None:
        args: list[str] = [repr(at), repr(dollars_per_second), session_id, str(KEEP_SECONDS * 1000)]
        for field, unit in fields.items():
            args += [field, unit]
        keys = [*self._keys(key), self._owner_key(session_id)]
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
