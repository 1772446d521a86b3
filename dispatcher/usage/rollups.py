"""Usage rollups: each ended session added, once, to its day's sums per key, release and model, kept
in the coordination store so every replica adds to and reads the same sums (in this process's memory
without a store). `GET /usage` reads days of sums, never the sessions themselves.

A day is one hash, its fields `key␟release␟measure␟model`, its values running sums. The
session's own row has model "" (`sessions`, `seconds`, `machine_usd`, `unpriced`); each of its
services has a row under `kind:model` (`usd` or `unpriced`, and its counts). One script adds a
session: it first sets the session's marker (`SET NX`), so an end reported twice, at one replica or
two, is added once. Sizes are bounded: a day holds at most `MAX_FIELDS` distinct fields, and at most
`MAX_KEY_MODEL_FIELDS` of one key's models (a new model past either is summed under `OTHER`), and
expires `keep_days` after its last write; a query spans at most `MAX_QUERY_DAYS` days, each day
grouped in the store by one short script call, so its answer is a few rows whatever the days hold.
Only commands the store's user already holds are used (stacks/shared/store_access.py): the sums
are read and written with HGET/HSET inside the scripts.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Protocol

from dispatcher.store.client import Store

MAX_FIELDS = 5_000  # per day: ~40 keys × a few releases × a handful of models × their measures
# Per key and day, of its services' rows: the models are what its bots report, so one key's bots naming
# a new model each call would otherwise fill the day and fold every other key's new models into OTHER.
MAX_KEY_MODEL_FIELDS = 250
MAX_QUERY_DAYS = 400
MARKER_SECONDS = 3 * 86_400  # an end reported again later than this (its timeline is kept a day) is not seen
OTHER = "(other)"
COUNT = "#"  # the hash's own count of its fields

# KEYS[1]: the session's marker, KEYS[2]: the day. ARGV: marker ms, day ms, max fields, the key's count
# field, the key's max model fields, then triples (field, the field it folds into past a bound, amount);
# a field that folds into itself is a session's own row, not a model's.
_ADD = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
local n = tonumber(redis.call('HGET', KEYS[2], '#') or '0')
local most = tonumber(ARGV[3])
local kn = tonumber(redis.call('HGET', KEYS[2], ARGV[4]) or '0')
local key_most = tonumber(ARGV[5])
for i = 6, #ARGV, 3 do
  local f = ARGV[i]
  local model = f ~= ARGV[i + 1]
  local have = redis.call('HGET', KEYS[2], f)
  if not have and (n >= most or (model and kn >= key_most)) then
    f = ARGV[i + 1]
    model = false
    have = redis.call('HGET', KEYS[2], f)
  end
  if not have then
    n = n + 1
    if model then kn = kn + 1 end
  end
  redis.call('HSET', KEYS[2], f, tostring((tonumber(have) or 0) + tonumber(ARGV[i + 2])))
end
redis.call('HSET', KEYS[2], '#', n)
redis.call('HSET', KEYS[2], ARGV[4], kn)
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"""
# KEYS: a day; ARGV: how to group (key, release, day, model), one key's rows only (or ""), the day's
# name. The sums are grouped here, in the store, so a day answers a few rows however many fields it
# holds. Each output: group, measure (a service's own `m.` prefixed), sum; the
# group "" is the total.
_GROUPED = """
local by, only, sums, order = ARGV[1], ARGV[2], {}, {}
local function add(group, measure, value)
  local k = measure .. '\\31' .. group
  if not sums[k] then order[#order + 1] = k end
  sums[k] = (sums[k] or 0) + value
end
for i, day in ipairs(KEYS) do
  local flat = redis.call('HGETALL', day)
  for j = 1, #flat, 2 do
    local f = flat[j]
    local a = string.find(f, '\\31', 1, true)
    if a then
      local b = string.find(f, '\\31', a + 1, true)
      local c = b and string.find(f, '\\31', b + 1, true)
      if c then
        local key, model = string.sub(f, 1, a - 1), string.sub(f, c + 1)
        if only == '' or key == only then
          local measure = string.sub(f, b + 1, c - 1)
          if model ~= '' then measure = 'm.' .. measure end
          local value = tonumber(flat[j + 1]) or 0
          add('', measure, value)
          local group
          if by == 'key' then group = key
          elseif by == 'release' then group = string.sub(f, a + 1, b - 1)
          elseif by == 'day' then group = ARGV[2 + i]
          elseif model ~= '' then group = model end
          if group then add(group, measure, value) end
        end
      end
    end
  end
end
local out = {}
for n = 1, #order do
  local k = order[n]
  local at = string.find(k, '\\31', 1, true)
  out[#out + 1] = string.sub(k, at + 1)
  out[#out + 1] = string.sub(k, 1, at - 1)
  out[#out + 1] = tostring(sums[k])
end
return out
"""
SEPARATOR = "\x1f"  # key names, release names and measures never hold it; the model, last, may
Grouped = dict[str, dict[str, float]]  # group ("" the total) → measure (a service's `m.`-prefixed) → sum


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

    async def grouped(self, first: date, last: date, by: str, key: str | None) -> Grouped:
        """The sums from `first` to `last` (at most `MAX_QUERY_DAYS` days) per key, release, day or
        model, of one key's sessions or of every key's."""
        ...


def field_of(key: str, release: str, model: str, measure: str) -> str:
    return SEPARATOR.join((key, release, measure, model))


def _fields(use: SessionUse) -> list[tuple[str, str, float]]:
    return [(field_of(use.key, use.release, a.model, a.measure),
             field_of(use.key, use.release, OTHER if a.model else "", a.measure), a.value) for a in use.amounts]


def _key_count(key: str) -> str:
    """The day's field counting `key`'s model fields: one separator, so the grouping skips it."""
    return f"{COUNT}{SEPARATOR}{key}"


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
        self._grouped = store.redis.register_script(_GROUPED)

    def _day_key(self, day: date) -> str:
        return self._store.key("usage", day.isoformat())

    async def add(self, use: SessionUse) -> bool:
        args: list[Any] = [MARKER_SECONDS * 1000, self._keep_ms, MAX_FIELDS, _key_count(use.key), MAX_KEY_MODEL_FIELDS]
        for field, other, value in _fields(use):
            args += [field, other, repr(float(value))]
        keys = [self._store.key("usage", "counted", use.session_id), self._day_key(use.day)]
        return bool(await self._store.call(lambda: self._add(keys=keys, args=args)))

    async def grouped(self, first: date, last: date, by: str, key: str | None) -> Grouped:
        """One script call a day, merged here: each holds the store a few milliseconds (a day's fields
        at most `MAX_FIELDS`), and other replicas' calls run between them."""
        out: Grouped = {}
        for day in _span(first, last):
            args = [by, key or "", day.isoformat()]
            raw = await self._store.call(lambda: self._grouped(keys=[self._day_key(day)], args=args))  # noqa: B023
            for n in range(0, len(raw) - 2, 3):
                sums = out.setdefault(_text(raw[n]), {})
                measure = _text(raw[n + 1])
                sums[measure] = sums.get(measure, 0.0) + float(raw[n + 2])
        return out


class MemoryRollups:
    """One process's sums, with the store's bounds (and at most `keep_days` days)."""

    def __init__(self, keep_days: int, remembered: int = 100_000) -> None:
        self._keep_days = keep_days
        self._days: dict[date, dict[str, float]] = {}
        self._key_fields: dict[date, dict[str, int]] = {}  # per day, each key's model fields
        self._counted: OrderedDict[str, None] = OrderedDict()
        self._remembered = remembered

    async def add(self, use: SessionUse) -> bool:
        if use.session_id in self._counted:
            return False
        self._counted[use.session_id] = None
        if len(self._counted) > self._remembered:
            self._counted.popitem(last=False)
        sums = self._days.setdefault(use.day, {})
        counts = self._key_fields.setdefault(use.day, {})
        for field, other, value in _fields(use):
            model = field != other
            key_full = model and counts.get(use.key, 0) >= MAX_KEY_MODEL_FIELDS
            if field not in sums and (len(sums) >= MAX_FIELDS or key_full):
                field, model = other, False
            if field not in sums and model:
                counts[use.key] = counts.get(use.key, 0) + 1
            sums[field] = sums.get(field, 0.0) + value
        while len(self._days) > self._keep_days:
            oldest = min(self._days)
            del self._days[oldest]
            self._key_fields.pop(oldest, None)
        return True

    async def grouped(self, first: date, last: date, by: str, key: str | None) -> Grouped:
        """As the store's script groups them (`_GROUPED`)."""
        out: Grouped = {}
        for day in _span(first, last):
            for field, value in self._days.get(day, {}).items():
                their_key, release, measure, model = field.split(SEPARATOR, 3)
                if key is not None and their_key != key:
                    continue
                measure = f"m.{measure}" if model else measure
                groups = ["", {"key": their_key, "release": release, "day": day.isoformat()}.get(by, model)]
                for group in groups if groups[1] else groups[:1]:
                    sums = out.setdefault(group, {})
                    sums[measure] = sums.get(measure, 0.0) + value
        return out


def rollups_for(coordination: object, keep_days: int) -> Rollups:
    """The store's rollups when the replicas share one (`REDIS_URL`), else this process's memory."""
    store = getattr(coordination, "store", None)
    return StoreRollups(store, keep_days) if isinstance(store, Store) else MemoryRollups(keep_days)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
