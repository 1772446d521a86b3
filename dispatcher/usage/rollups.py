"""Usage rollups: each ended session added, once, to its day's sums per key, release and model, kept
in the coordination store so every replica adds to and reads the same sums (in this process's memory
without a store). `GET /usage` reads days of sums, never the sessions themselves.

A day is one hash, its fields `[key, release, model, measure]` (JSON), its values running sums. The
session's own row has model "" (`sessions`, `seconds`, `machine_usd`, `unpriced`); each of its
services has a row under `kind:model` (`usd` or `unpriced`, and its counts). One script adds a
session: it first sets the session's marker (`SET NX`), so an end reported twice, at one replica or
two, is added once. Sizes are bounded: a day holds at most `MAX_FIELDS` distinct fields (a new model
past it is summed under `OTHER`), and expires `keep_days` after its last write; a query spans at
most `MAX_QUERY_DAYS` days. Only commands the store's user already holds are used
(stacks/shared/store_access.py): the sums are read and written with HGET/HSET inside the scripts.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Protocol

from dispatcher.store.client import Store

MAX_FIELDS = 20_000  # per day: ~40 keys × a few releases × a handful of models × their measures
MAX_QUERY_DAYS = 400
MARKER_SECONDS = 3 * 86_400  # an end reported again later than this (its timeline is kept a day) is not seen
OTHER = "(other)"
COUNT = "#"  # the hash's own count of its fields

# KEYS[1]: the session's marker, KEYS[2]: the day. ARGV: marker ms, day ms, max fields, then triples
# (field, the field it folds into past the bound, amount).
_ADD = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
local n = tonumber(redis.call('HGET', KEYS[2], '#') or '0')
local most = tonumber(ARGV[3])
for i = 4, #ARGV, 3 do
  local f = ARGV[i]
  local have = redis.call('HGET', KEYS[2], f)
  if not have and n >= most then
    f = ARGV[i + 1]
    have = redis.call('HGET', KEYS[2], f)
  end
  if not have then n = n + 1 end
  redis.call('HSET', KEYS[2], f, tostring((tonumber(have) or 0) + tonumber(ARGV[i + 2])))
end
redis.call('HSET', KEYS[2], '#', n)
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"""
# KEYS: the days asked for; each day's fields and sums, in order.
_READ = """
local out = {}
for i, k in ipairs(KEYS) do out[i] = redis.call('HGETALL', k) end
return out
"""


@dataclass(frozen=True)
class Amount:
    """One sum to add: the row (model "" for the session's own) and the measure."""

    model: str
    measure: str
    value: float


@dataclass(frozen=True)
class SessionUse:
    session_id: str
    day: date
    key: str
    release: str
    amounts: tuple[Amount, ...]


class Rollups(Protocol):
    async def add(self, use: SessionUse) -> bool:
        """Adds the session's amounts to its day; False when it was added before."""
        ...

    async def days(self, first: date, last: date) -> dict[date, dict[tuple[str, str, str, str], float]]:
        """Each day's sums from `first` to `last` (at most `MAX_QUERY_DAYS`), by (key, release, model, measure)."""
        ...


def field_of(key: str, release: str, model: str, measure: str) -> str:
    return json.dumps([key, release, model, measure], separators=(",", ":"))


def _fields(use: SessionUse) -> list[tuple[str, str, float]]:
    return [(field_of(use.key, use.release, a.model, a.measure),
             field_of(use.key, use.release, OTHER if a.model else "", a.measure), a.value) for a in use.amounts]


def _parsed(raw: Mapping[str, str]) -> dict[tuple[str, str, str, str], float]:
    sums: dict[tuple[str, str, str, str], float] = {}
    for name, value in raw.items():
        try:
            key, release, model, measure = json.loads(name)
            sums[(str(key), str(release), str(model), str(measure))] = float(value)
        except (ValueError, TypeError):
            continue  # the count field, or a field written by something else
    return sums


def _span(first: date, last: date) -> list[date]:
    count = (last - first).days + 1
    if not 1 <= count <= MAX_QUERY_DAYS:
        raise ValueError(f"a span of 1 to {MAX_QUERY_DAYS} days")
    return [first + timedelta(days=n) for n in range(count)]


class StoreRollups:
    def __init__(self, store: Store, keep_days: int) -> None:
        self._store = store
        self._keep_ms = (keep_days + 1) * 86_400_000
        self._add = store.redis.register_script(_ADD)
        self._read = store.redis.register_script(_READ)

    def _day_key(self, day: date) -> str:
        return self._store.key("usage", day.isoformat())

    async def add(self, use: SessionUse) -> bool:
        args: list[Any] = [MARKER_SECONDS * 1000, self._keep_ms, MAX_FIELDS]
        for field, other, value in _fields(use):
            args += [field, other, repr(float(value))]
        keys = [self._store.key("usage", "counted", use.session_id), self._day_key(use.day)]
        return bool(await self._store.call(lambda: self._add(keys=keys, args=args)))

    async def days(self, first: date, last: date) -> dict[date, dict[tuple[str, str, str, str], float]]:
        days = _span(first, last)
        raw = await self._store.call(lambda: self._read(keys=[self._day_key(day) for day in days]), timeout=5.0)
        out = {}
        for day, flat in zip(days, raw, strict=True):
            pairs = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
            if pairs:
                out[day] = _parsed(pairs)
        return out


class MemoryRollups:
    """One process's sums, with the store's bounds (and at most `keep_days` days)."""

    def __init__(self, keep_days: int, remembered: int = 100_000) -> None:
        self._keep_days = keep_days
        self._days: dict[date, dict[str, float]] = {}
        self._counted: OrderedDict[str, None] = OrderedDict()
        self._remembered = remembered

    async def add(self, use: SessionUse) -> bool:
        if use.session_id in self._counted:
            return False
        self._counted[use.session_id] = None
        if len(self._counted) > self._remembered:
            self._counted.popitem(last=False)
        sums = self._days.setdefault(use.day, {})
        for field, other, value in _fields(use):
            if field not in sums and len(sums) >= MAX_FIELDS:
                field = other
            sums[field] = sums.get(field, 0.0) + value
        while len(self._days) > self._keep_days:
            del self._days[min(self._days)]
        return True

    async def days(self, first: date, last: date) -> dict[date, dict[tuple[str, str, str, str], float]]:
        wanted = set(_span(first, last))
        return {day: _parsed({k: str(v) for k, v in sums.items()}) for day, sums in self._days.items()
                if day in wanted}


def rollups_for(coordination: object, keep_days: int) -> Rollups:
    """The store's rollups when the replicas share one (`REDIS_URL`), else this process's memory."""
    store = getattr(coordination, "store", None)
    return StoreRollups(store, keep_days) if isinstance(store, Store) else MemoryRollups(keep_days)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def iter_sums(days: Mapping[date, Mapping[tuple[str, str, str, str], float]]
              ) -> Iterable[tuple[date, str, str, str, str, float]]:
    for day, sums in days.items():
        for (key, release, model, measure), value in sums.items():
            yield day, key, release, model, measure, value
