"""Campaigns in the store, shared by every replica (dispatcher/store/campaign_book.py says the contract).

Per campaign: `campaign:<id>:meta` (a hash: spec, status, concurrency, …), `:rows` and `:state` (hashes by
row id: the call as given; its progress), `:ready` (a sorted set by due time: 0 for a row never claimed, a
retry's time), `:active` (a sorted set by lease end), `:holders` (row → the holder of its lease) and
`:counts` (a hash of counts). Every claim, renewal and settlement is one Lua script, atomic in the store,
and every write by a holder compares its claim's lease first, so two replicas never hold one row.
`campaigns:live` holds the campaigns a replica has something to do for, each at the time it is next due
(a replica's look costs the store calls of the campaigns due, never of those idle or stopped);
`campaigns:owner:<key>:all`, `:open` and `:rows` are a key's campaigns, those not finished, and its rows per
campaign, which bound what one key keeps in the store (`Limits`); `campaigns:every` is every key's campaigns
(an admin's list), written where a campaign is opened, its oldest past `Limits.every` and those expired pruned
then. A campaign's keys all expire together, `KEEP_SECONDS` after it was opened or last given rows; its
key's indexes and every key's drop it then.
Only commands the store user is granted (stacks/shared/store_access.py)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from dispatcher.store.campaign_book import (
    DEFAULT_LIMITS,
    KEEP_SECONDS,
    LAST,
    LOST,
    RUNNING,
    SETTLED,
    STOPPED,
    CampaignBook,
    CampaignRecord,
    Claimed,
    DuplicateNumber,
    Limits,
    MemoryCampaignBook,
    OverLimit,
    lease_token,
    row_id,
)
from dispatcher.store.client import Store

PARTS = ("meta", "rows", "state", "ready", "active", "holders", "counts", "numbers")
CHUNK = 1000  # rows written (or read) per script: no call holds the store long
PAGE = 1000  # campaigns read from an index per call
# Shared by the scripts. `now_ms`: the store's clock. `keep`: every key of the campaign expires together, at
# its meta's `kept_until` (set when it is opened and each time rows are added). `reindex`: the campaign's
# place in `campaigns:live`, the time a replica should next look at it (0: a row due now; a retry's time; a
# lease's end), or out of it when there is nothing to do (stopped with no call under way, finished, gone).
# `finish`: out of the live index and of its key's count of campaigns not finished. `prune`: a key's
# campaigns whose records expired, out of its indexes and its count of rows (at most PAGE a call).
_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function keep(meta, keys)
  local left = (tonumber(redis.call('HGET', meta, 'kept_until')) or 0) - now_ms()
  if left <= 0 then return end
  for _, key in ipairs(keys) do redis.call('PEXPIRE', key, left) end
end
local function reindex(meta, ready, active, live, id)
  local status = redis.call('HGET', meta, 'status')
  if not status or status == 'finished' then redis.call('ZREM', live, id) return end
  local at = redis.call('ZRANGE', active, 0, 0, 'WITHSCORES')[2]
  at = at and tonumber(at)
  if status == 'running' and redis.call('ZCARD', active) < tonumber(redis.call('HGET', meta, 'concurrency')) then
    local due = redis.call('ZRANGE', ready, 0, 0, 'WITHSCORES')[2]
    if due and (not at or tonumber(due) < at) then at = tonumber(due) end
  end
  if at then redis.call('ZADD', live, at, id) else redis.call('ZREM', live, id) end
end
local function finish(meta, live, id, now)
  redis.call('HSET', meta, 'status', 'finished', 'finished', now)
  redis.call('ZREM', live, id)
  local open = redis.call('HGET', meta, 'open_index')
  if open then redis.call('ZREM', open, id) end
end
local function prune(index, open, rows, now)
  for _, gone in ipairs(redis.call('ZRANGE', index, '-inf', '(' .. now, 'BYSCORE', 'LIMIT', 0, PAGE)) do
    local total = (tonumber(redis.call('HGET', rows, 'total')) or 0) - (tonumber(redis.call('HGET', rows, gone)) or 0)
    redis.call('HSET', rows, 'total', math.max(total, 0))
    redis.call('HDEL', rows, gone)
    redis.call('ZREM', index, gone)
    redis.call('ZREM', open, gone)
  end
end
""".replace("PAGE", str(PAGE))
# KEYS: meta, counts, the owner's index, its campaigns not finished, its rows, every key's index. ARGV: id, keep
# (ms), the most campaigns not finished a key may have, the most every key's index keeps, then meta's
# field/value pairs. 1, or {'live', how many}.
_OPEN = _COMMON + """
local until_ms = now_ms() + tonumber(ARGV[2])
prune(KEYS[3], KEYS[4], KEYS[5], now_ms() / 1000)
local open = redis.call('ZCARD', KEYS[4])
if open >= tonumber(ARGV[3]) then return {'live', open} end
redis.call('HSET', KEYS[1], 'status', 'stopped', 'total', 0, 'kept_until', until_ms, 'open_index', KEYS[4],
           'rows_index', KEYS[5], 'owner_index', KEYS[3], 'every_index', KEYS[6])
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[2], 'skipped', 0)
redis.call('ZADD', KEYS[3], until_ms / 1000, ARGV[1])
redis.call('ZADD', KEYS[4], until_ms / 1000, ARGV[1])
redis.call('HSET', KEYS[5], ARGV[1], 0)
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', '(' .. (now_ms() / 1000))
redis.call('ZADD', KEYS[6], until_ms / 1000, ARGV[1])
local over = redis.call('ZCARD', KEYS[6]) - tonumber(ARGV[4])
if over > 0 then
  for _, oldest in ipairs(redis.call('ZRANGE', KEYS[6], 0, over - 1)) do redis.call('ZREM', KEYS[6], oldest) end
end
for i = 3, 6 do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
keep(KEYS[1], {KEYS[1], KEYS[2]})
return 1
"""
# KEYS: meta, rows, state, ready, counts, active, holders, live, numbers. ARGV: keep (ms), skipped, id, the most
# rows a campaign may have, the most its key's campaigns may have together, the rows checked against both (the
# request's in its first chunk), how many numbers follow to check (the request's, in its first chunk), those
# numbers, then per row its call, state, '1' (ready) or '0', and its number. Row ids follow the campaign's
# last. Its rows in all; false when it is gone or finished; {'rows' | 'key_rows', how many already}; or
# {'duplicate', number, its row} when a number is in the campaign already.
_APPEND = _COMMON + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status or status == 'finished' then return false end
local total = tonumber(redis.call('HGET', KEYS[1], 'total'))
local checked = tonumber(ARGV[6])
if total + checked > tonumber(ARGV[4]) then return {'rows', total} end
-- A campaign opened before its key's indexes were kept has none: its rows are bounded per campaign only.
local owner_rows = redis.call('HGET', KEYS[1], 'rows_index')
local index, open = redis.call('HGET', KEYS[1], 'owner_index'), redis.call('HGET', KEYS[1], 'open_index')
local key_total = 0
if owner_rows then
  prune(index, open, owner_rows, now_ms() / 1000)
  key_total = tonumber(redis.call('HGET', owner_rows, 'total')) or 0
  if key_total + checked > tonumber(ARGV[5]) then return {'key_rows', key_total} end
end
local numbers = tonumber(ARGV[7])
for i = 8, 7 + numbers do
  local earlier = redis.call('HGET', KEYS[9], ARGV[i])
  if earlier then return {'duplicate', ARGV[i], earlier} end
end
local added = 0
for i = 8 + numbers, #ARGV, 4 do
  local row = string.format('%06d', total)
  redis.call('HSET', KEYS[2], row, ARGV[i])
  redis.call('HSET', KEYS[3], row, ARGV[i + 1])
  if ARGV[i + 2] == '1' then redis.call('ZADD', KEYS[4], 0, row) end
  redis.call('HSET', KEYS[9], ARGV[i + 3], row)
  total = total + 1
  added = added + 1
end
redis.call('HSET', KEYS[1], 'total', total)
redis.call('HSET', KEYS[5], 'skipped', tonumber(redis.call('HGET', KEYS[5], 'skipped')) + tonumber(ARGV[2]))
local until_ms = now_ms() + tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'kept_until', until_ms)
if owner_rows then
  redis.call('HSET', owner_rows, ARGV[3], (tonumber(redis.call('HGET', owner_rows, ARGV[3])) or 0) + added)
  redis.call('HSET', owner_rows, 'total', key_total + added)
  redis.call('ZADD', index, 'XX', until_ms / 1000, ARGV[3])
  redis.call('ZADD', open, 'XX', until_ms / 1000, ARGV[3])
  for _, key in ipairs({index, open, owner_rows}) do redis.call('PEXPIRE', key, ARGV[1]) end
end
-- A campaign opened before every key's index was kept has none: its key's index lists it.
local every = redis.call('HGET', KEYS[1], 'every_index')
if every then
  redis.call('ZADD', every, 'XX', until_ms / 1000, ARGV[3])
  redis.call('PEXPIRE', every, ARGV[1])
end
keep(KEYS[1], {KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[9]})
reindex(KEYS[1], KEYS[4], KEYS[6], KEYS[8], ARGV[3])
return total
"""
# KEYS: meta, rows, state, ready, active, holders, live. ARGV: now, lease end, the claim's lease, id.
_CLAIM = _COMMON + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then redis.call('ZREM', KEYS[7], ARGV[4]) return false end
local row = redis.call('ZRANGE', KEYS[5], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, 1)[1]
if not row then
  if status ~= 'running' or redis.call('ZCARD', KEYS[5]) >= tonumber(redis.call('HGET', KEYS[1], 'concurrency')) then
    reindex(KEYS[1], KEYS[4], KEYS[5], KEYS[7], ARGV[4])
    return false
  end
  row = redis.call('ZRANGE', KEYS[4], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, 1)[1]
  if not row then
    reindex(KEYS[1], KEYS[4], KEYS[5], KEYS[7], ARGV[4])
    return false
  end
  redis.call('ZREM', KEYS[4], row)
end
redis.call('ZADD', KEYS[5], ARGV[2], row)
redis.call('HSET', KEYS[6], row, ARGV[3])
keep(KEYS[1], {KEYS[5], KEYS[6]})
reindex(KEYS[1], KEYS[4], KEYS[5], KEYS[7], ARGV[4])
return {row, redis.call('HGET', KEYS[2], row), redis.call('HGET', KEYS[3], row)}
"""
# KEYS: active, holders. ARGV: row, the claim's lease, lease end.
_RENEW = """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
"""
# KEYS: meta, active, holders. ARGV: row, the claim's lease, lease end. 'lost', 'halted' or 'held'.
_FENCE = """
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 'lost' end
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 'halted' end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 'held'
"""
# KEYS: meta, state, ready, active, holders, counts, live. ARGV: row, the claim's lease, state, due ('' none,
# '-': a note, the lease kept), now, id, the counts' names.
_SETTLE = _COMMON + """
if redis.call('HGET', KEYS[5], ARGV[1]) ~= ARGV[2] then return 'lost' end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
for i = 7, #ARGV do
  redis.call('HSET', KEYS[6], ARGV[i], (tonumber(redis.call('HGET', KEYS[6], ARGV[i])) or 0) + 1)
end
if ARGV[4] == '-' then return 'settled' end
redis.call('HDEL', KEYS[5], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
  keep(KEYS[1], {KEYS[3]})
end
if redis.call('ZCARD', KEYS[3]) == 0 and redis.call('ZCARD', KEYS[4]) == 0
    and redis.call('HGET', KEYS[1], 'status') ~= 'finished' then
  finish(KEYS[1], KEYS[7], ARGV[6], ARGV[5])
  return 'last'
end
reindex(KEYS[1], KEYS[3], KEYS[4], KEYS[7], ARGV[6])
return 'settled'
"""
# KEYS: meta, ready, active, live. ARGV: status, now, id. {status, 1 when this finished it}.
_STATUS = _COMMON + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
if status == 'finished' then return {status, 0} end
if redis.call('ZCARD', KEYS[2]) == 0 and redis.call('ZCARD', KEYS[3]) == 0 then
  finish(KEYS[1], KEYS[4], ARGV[3], ARGV[2])
  return {'finished', 1}
end
redis.call('HSET', KEYS[1], 'status', ARGV[1])
reindex(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[3])
return {ARGV[1], 0}
"""
# KEYS: meta, counts, ready, active.
_READ = """
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]), redis.call('ZCOUNT', KEYS[3], 0, 0),
        redis.call('ZCOUNT', KEYS[3], '(0', '+inf'), redis.call('ZCARD', KEYS[4])}
"""
# KEYS: an owner's index, or every key's. ARGV: limit, offset. Its newest first.
_NEWEST = """
return redis.call('ZRANGE', KEYS[1], '+inf', '-inf', 'BYSCORE', 'REV', 'LIMIT', tonumber(ARGV[2]), tonumber(ARGV[1]))
"""
# KEYS: the live index. ARGV: now, offset, count. The campaigns due by now, soonest first.
_DUE = """
return redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', tonumber(ARGV[2]), tonumber(ARGV[3]))
"""
# KEYS: rows, state. ARGV: row ids. Each row's call and state (false where none).
_ROWS = """
local found = {}
for i = 1, #ARGV do
  table.insert(found, redis.call('HGET', KEYS[1], ARGV[i]) or '')
  table.insert(found, redis.call('HGET', KEYS[2], ARGV[i]) or '')
end
return found
"""


class StoreCampaignBook:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._live = store.key("campaigns", "live")
        self._every = store.key("campaigns", "every")
        redis = store.redis
        self._scripts = {
            "open": redis.register_script(_OPEN),
            "append": redis.register_script(_APPEND),
            "claim": redis.register_script(_CLAIM),
            "renew": redis.register_script(_RENEW),
            "fence": redis.register_script(_FENCE),
            "settle": redis.register_script(_SETTLE),
            "status": redis.register_script(_STATUS),
            "read": redis.register_script(_READ),
            "newest": redis.register_script(_NEWEST),
            "due": redis.register_script(_DUE),
            "rows": redis.register_script(_ROWS),
        }

    def _keys(self, campaign_id: str, *parts: str) -> list[str]:
        return [self._store.key("campaign", campaign_id, part) for part in parts]

    def _owner(self, owner: str) -> list[str]:
        """A key's campaigns (newest kept first), those of them not finished, and its rows by campaign."""
        return [self._store.key("campaigns", "owner", owner, part) for part in ("all", "open", "rows")]

    async def _run(self, name: str, keys: list[str], args: Sequence[Any]) -> Any:
        script = self._scripts[name]
        return await self._store.call(lambda: script(keys=keys, args=list(args)))

    async def open(self, campaign_id: str, meta: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> None:
        pairs = [str(v) for item in meta.items() for v in item]
        said = await self._run("open", [*self._keys(campaign_id, "meta", "counts"), *self._owner(str(meta["owner"])),
                                        self._every],
                               [campaign_id, _keep(), limits.live, limits.every, *pairs])
        if isinstance(said, list):
            raise OverLimit("live", limits.live, int(said[1]))

    async def append(self, campaign_id: str, rows: Sequence[Mapping[str, Any]], states: Sequence[Mapping[str, Any]],
                     ready: Sequence[bool], skipped: int, limits: Limits = DEFAULT_LIMITS) -> int | None:
        total = None
        keys = [*self._keys(campaign_id, "meta", "rows", "state", "ready", "counts", "active", "holders"), self._live,
                *self._keys(campaign_id, "numbers")]
        for start in range(0, len(rows), CHUNK):
            args: list[Any] = []
            for n in range(start, min(start + CHUNK, len(rows))):
                args += [_text(rows[n]), _text(states[n]), "1" if ready[n] else "0", str(rows[n]["to"])]
            # The whole request is checked in its first chunk: bounds and numbers already in the campaign.
            checked = [str(row["to"]) for row in rows] if start == 0 else []
            total = await self._run("append", keys, [_keep(), skipped if start == 0 else 0, campaign_id, limits.rows,
                                                     limits.key_rows, len(checked) or len(args) // 4, len(checked),
                                                     *checked, *args])
            if isinstance(total, list):
                which = str(total[0])
                if which == "duplicate":
                    raise DuplicateNumber(str(total[1]), str(total[2]))
                raise OverLimit(which, limits.rows if which == "rows" else limits.key_rows, int(total[1]))
            if not total:
                return None
        return int(total) if total is not None else None

    async def claim(self, campaign_id: str, holder: str, now: float, lease_seconds: float) -> Claimed | None:
        keys = [*self._keys(campaign_id, "meta", "rows", "state", "ready", "active", "holders"), self._live]
        lease = lease_token(holder)
        found = await self._run("claim", keys, [now, now + lease_seconds, lease, campaign_id])
        if not found:
            return None
        row, call, state = found
        return Claimed(str(row), lease, json.loads(call), json.loads(state))

    async def renew(self, campaign_id: str, row: str, holder: str, until: float) -> bool:
        return bool(await self._run("renew", self._keys(campaign_id, "active", "holders"), [row, holder, until]))

    async def fence(self, campaign_id: str, row: str, holder: str, until: float) -> str:
        return str(await self._run("fence", self._keys(campaign_id, "meta", "active", "holders"), [row, holder, until]))

    async def note(self, campaign_id: str, row: str, holder: str, state: Mapping[str, Any],
                   counts: Sequence[str]) -> bool:
        return await self._settle(campaign_id, row, holder, state, "-", counts, 0.0) != LOST

    async def settle(self, campaign_id: str, row: str, holder: str, state: Mapping[str, Any], due: float | None,
                     counts: Sequence[str], now: float) -> str:
        return await self._settle(campaign_id, row, holder, state, "" if due is None else due, counts, now)

    async def _settle(self, campaign_id: str, row: str, holder: str, state: Mapping[str, Any], due: float | str,
                      counts: Sequence[str], now: float) -> str:
        keys = [*self._keys(campaign_id, "meta", "state", "ready", "active", "holders", "counts"), self._live]
        args = [row, holder, _text(state), due, now, campaign_id, *counts]
        said = str(await self._run("settle", keys, args))
        return said if said in (LOST, SETTLED, LAST) else LOST

    async def set_status(self, campaign_id: str, status: str, now: float) -> tuple[str, bool] | None:
        assert status in (RUNNING, STOPPED), status
        found = await self._run("status", [*self._keys(campaign_id, "meta", "ready", "active"), self._live],
                                [status, now, campaign_id])
        return (str(found[0]), bool(int(found[1]))) if found else None

    async def read(self, campaign_id: str) -> CampaignRecord | None:
        meta, counts, pending, retrying, active = await self._run(
            "read", self._keys(campaign_id, "meta", "counts", "ready", "active"), [])
        if not meta:
            return None
        fields = dict(zip(meta[::2], meta[1::2], strict=True))
        return CampaignRecord(fields, {k: int(v) for k, v in zip(counts[::2], counts[1::2], strict=True)},
                              int(pending), int(retrying), int(active))

    async def listed(self, owner: str | None, limit: int, offset: int = 0) -> list[str]:
        index = self._every if owner is None else self._owner(owner)[0]
        return [str(found) for found in await self._run("newest", [index], [limit, offset])]

    async def live(self, now: float) -> list[str]:
        due: list[str] = []
        while len(page := await self._run("due", [self._live], [now, len(due), PAGE])) == PAGE:
            due += [str(found) for found in page]
        return due + [str(found) for found in page]

    async def forget(self, campaign_id: str, owner: str | None = None) -> None:
        """A campaign whose records expired, out of the indexes."""
        for index in (self._live, self._every):
            await self._store.call(lambda index=index: self._store.redis.zrem(index, campaign_id))  # type: ignore[misc]
        if owner is not None:
            for index in self._owner(owner)[:2]:
                await self._store.call(lambda index=index: self._store.redis.zrem(index, campaign_id))  # type: ignore[misc]

    async def rows(self, campaign_id: str, start: int, count: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        found = await self._run("rows", self._keys(campaign_id, "rows", "state"),
                                [row_id(n) for n in range(start, start + count)])
        pairs = [(found[i], found[i + 1]) for i in range(0, len(found), 2)]
        return [(json.loads(call), json.loads(state)) for call, state in pairs if call]


def _keep() -> int:
    return math.ceil(KEEP_SECONDS * 1000)


def _text(value: Mapping[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))


def campaign_book(coordination: object) -> CampaignBook:
    """The store's campaigns when the replicas share one (`REDIS_URL`), else this process's memory."""
    store = getattr(coordination, "store", None)
    return StoreCampaignBook(store) if isinstance(store, Store) else MemoryCampaignBook()

