"""What each API key used of its budgets, for the whole deployment: its sessions open now (each with
when it started) and its minutes and spend by period (`minutes:day:2026-11-27`, `dollars:month:2026-11`).

A start is opened here in the background once admitted and closed by whichever replica sees the
session end (its stop, its bot's end, its machine's end), which adds its minutes and spend to the
periods it ended in: opening and closing are one step each, so a session is counted once however
many replicas see its end. The replicas read the budgeted keys' usage once a second
(dispatcher/sessions/budget_usage.py): a start checks what was read, with no store call of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from dispatcher.store.client import Store

KEEP_SECONDS = 40 * 86_400  # a period's usage outlives its month; a session open this long is forgotten
# Closes a session: its start is taken out of the open hash, and, if it was there, its seconds (to
# ARGV[1], the end) turn into minutes and dollars (ARGV[2] a second) added to each period field given.
_CLOSE = """
local started = redis.call('HGET', KEYS[1], ARGV[3])
if not started then return nil end
redis.call('HDEL', KEYS[1], ARGV[3])
local seconds = math.max(0, tonumber(ARGV[1]) - tonumber(started))
for i = 4, #ARGV, 2 do
  local amount = seconds / 60
  if ARGV[i + 1] == 'dollars' then amount = seconds * tonumber(ARGV[2]) end
  redis.call('HINCRBYFLOAT', KEYS[2], ARGV[i], amount)
end
redis.call('EXPIRE', KEYS[2], KEEP)
return tostring(seconds)
""".replace("KEEP", str(KEEP_SECONDS))


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
        """Each key's fields and its sessions open now (`sessions`)."""
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
        return {key: {**self._used.get(key, {}), "sessions": float(len(self._open.get(key, {})))} for key in keys}


class StoreBudgetLedger:
    """Several replicas: the ledger in the store, a hash of open sessions and one of usage per key."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._close = store.redis.register_script(_CLOSE)

    def _keys(self, key: str) -> tuple[str, str]:
        return self._store.key("budget", "open", key), self._store.key("budget", "used", key)

    def _owner_key(self, session_id: str) -> str:
        return self._store.key("budget", "owner", session_id)

    async def open(self, key: str, session_id: str, at: float) -> None:
        opened, _ = self._keys(key)

        async def write() -> None:
            async with self._store.redis.pipeline(transaction=True) as pipe:
                pipe.hset(opened, session_id, repr(at))
                pipe.expire(opened, KEEP_SECONDS)
                pipe.set(self._owner_key(session_id), key, ex=KEEP_SECONDS)
                await pipe.execute()

        await self._store.call(write)

    async def owner(self, session_id: str) -> str | None:
        found = await self._store.call(lambda: self._store.redis.get(self._owner_key(session_id)))
        return None if found is None else str(found)

    async def first(self, what: str, seconds: float) -> bool:
        key = self._store.key("budget", "told", what)
        return bool(await self._store.call(lambda: self._store.redis.set(key, "1", nx=True, ex=max(1, int(seconds)))))

    async def close(self, key: str, session_id: str, at: float, dollars_per_second: float,
                    fields: Mapping[str, str]) -> float | None:
        args: list[str] = [repr(at), repr(dollars_per_second), session_id]
        for field, unit in fields.items():
            args += [field, unit]
        answer = await self._store.call(lambda: self._close(keys=list(self._keys(key)), args=args))
        if answer is not None:
            await self._store.call(lambda: self._store.redis.delete(self._owner_key(session_id)))
        return None if answer is None else float(answer)

    async def read(self, keys: Iterable[str]) -> dict[str, dict[str, float]]:
        wanted = sorted(set(keys))
        if not wanted:
            return {}

        async def read_all() -> list[object]:
            async with self._store.redis.pipeline(transaction=False) as pipe:
                for key in wanted:
                    opened, used = self._keys(key)
                    pipe.hlen(opened)
                    pipe.hgetall(used)
                return list(await pipe.execute())

        answers = await self._store.call(read_all)
        found: dict[str, dict[str, float]] = {}
        for n, key in enumerate(wanted):
            count, used = answers[2 * n], answers[2 * n + 1]
            fields = {str(f): float(v) for f, v in (used or {}).items()} if isinstance(used, dict) else {}
            found[key] = {**fields, "sessions": float(count if isinstance(count, int) else 0)}
        return found


def budget_ledger(coordination: object) -> BudgetLedger:
    """The store's ledger when the replicas share one (`REDIS_URL`), else this process's memory."""
    store = getattr(coordination, "store", None)
    return StoreBudgetLedger(store) if isinstance(store, Store) else MemoryBudgetLedger()
