"""Campaigns in the store, shared by every replica (dispatcher/store/campaign_book.py says the contract).

Per campaign: `campaign:<id>:meta` (a hash: spec, status, concurrency, …), `:rows` and `:state` (hashes by
row id: the call as given; its progress), `:ready` (a sorted set by due time: 0 for a row never claimed, a
retry's time), `:active` (a sorted set by lease end), `:holders` (row → the holder of its lease) and
`:counts` (a hash of counts). Every claim, renewal and settlement is one Lua script, atomic in the store,
and every write by a holder compares its lease first, so two replicas never hold one row. `campaigns`
and `campaigns:live` index them. Each campaign's keys expire `KEEP_SECONDS` after its creation.
Only commands the store user is granted (stacks/shared/store_access.py)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from dispatcher.store.campaign_book import (
    KEEP_SECONDS,
    LAST,
    LOST,
    RUNNING,
    SETTLED,
    STOPPED,
    CampaignBook,
    CampaignRecord,
    Claimed,
    MemoryCampaignBook,
    lease_token,
    row_id,
)
from dispatcher.store.client import Store

PARTS = ("meta", "rows", "state", "ready", "active", "holders", "counts")
CHUNK = 1000  # rows written (or read) per script: no call holds the store long
# KEYS: meta, counts, campaigns, live. ARGV: id, created, keep (ms), then meta's field/value pairs.
_OPEN = """
redis.call('HSET', KEYS[1], 'status', 'stopped', 'total', 0)
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[2], 'skipped', 0)
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
"""
# KEYS: meta, rows, state, ready, counts. ARGV: keep (ms), skipped, then per row its call, state and '1' (ready)
# or '0'. Row ids follow the campaign's last; its rows in all, or false when it is gone or finished.
_APPEND = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status or status == 'finished' then return false end
local total = tonumber(redis.call('HGET', KEYS[1], 'total'))
for i = 3, #ARGV, 3 do
  local row = string.format('%06d', total)
  redis.call('HSET', KEYS[2], row, ARGV[i])
  redis.call('HSET', KEYS[3], row, ARGV[i + 1])
  if ARGV[i + 2] == '1' then redis.call('ZADD', KEYS[4], 0, row) end
  total = total + 1
end
redis.call('HSET', KEYS[1], 'total', total)
redis.call('HSET', KEYS[5], 'skipped', tonumber(redis.call('HGET', KEYS[5], 'skipped')) + tonumber(ARGV[2]))
for i = 2, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
return total
"""
# KEYS: meta, rows, state, ready, active, holders. ARGV: now, lease end, holder.
_CLAIM = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
local row = redis.call('ZRANGE', KEYS[5], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, 1)[1]
if not row then
  if status ~= 'running' or redis.call('ZCARD', KEYS[5]) >= tonumber(redis.call('HGET', KEYS[1], 'concurrency')) then
    return false
  end
  row = redis.call('ZRANGE', KEYS[4], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, 1)[1]
  if not row then return false end
  redis.call('ZREM', KEYS[4], row)
end
redis.call('ZADD', KEYS[5], ARGV[2], row)
redis.call('HSET', KEYS[6], row, ARGV[3])
redis.call('PEXPIRE', KEYS[5], ARGV[4])
redis.call('PEXPIRE', KEYS[6], ARGV[4])
return {row, redis.call('HGET', KEYS[2], row), redis.call('HGET', KEYS[3], row)}
"""
# KEYS: active, holders. ARGV: row, holder, lease end.
_RENEW = """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
"""
# KEYS: meta, state, ready, active, holders, counts, live. ARGV: row, holder, state, due ('' none, '-': a note,
# the lease kept), now, id, keep (ms), the counts' names.
_SETTLE = """
if redis.call('HGET', KEYS[5], ARGV[1]) ~= ARGV[2] then return 'lost' end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
for i = 8, #ARGV do
  redis.call('HSET', KEYS[6], ARGV[i], (tonumber(redis.call('HGET', KEYS[6], ARGV[i])) or 0) + 1)
end
if ARGV[4] == '-' then return 'settled' end
redis.call('HDEL', KEYS[5], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
  redis.call('PEXPIRE', KEYS[3], ARGV[7])
end
if redis.call('ZCARD', KEYS[3]) == 0 and redis.call('ZCARD', KEYS[4]) == 0
    and redis.call('HGET', KEYS[1], 'status') ~= 'finished' then
  redis.call('HSET', KEYS[1], 'status', 'finished', 'finished', ARGV[5])
  redis.call('ZREM', KEYS[7], ARGV[6])
  return 'last'
end
return 'settled'
"""
# KEYS: meta, ready, active, live. ARGV: status, now, id. {status, 1 when this finished it}.
_STATUS = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
if status == 'finished' then return {status, 0} end
if redis.call('ZCARD', KEYS[2]) == 0 and redis.call('ZCARD', KEYS[3]) == 0 then
  redis.call('HSET', KEYS[1], 'status', 'finished', 'finished', ARGV[2])
  redis.call('ZREM', KEYS[4], ARGV[3])
  return {'finished', 1}
end
redis.call('HSET', KEYS[1], 'status', ARGV[1])
return {ARGV[1], 0}
"""
# KEYS: meta, counts, ready, active.
_READ = """
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]), redis.call('ZCOUNT', KEYS[3], 0, 0),
        redis.call('ZCOUNT', KEYS[3], '(0', '+inf'), redis.call('ZCARD', KEYS[4])}
"""
# KEYS: an index. ARGV: limit.
_NEWEST = """
return redis.call('ZRANGE', KEYS[1], '+inf', '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, tonumber(ARGV[1]))
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
        self._index, self._live = store.key("campaigns"), store.key("campaigns", "live")
        redis = store.redis
        self._scripts = {
            "open": redis.register_script(_OPEN),
            "append": redis.register_script(_APPEND),
            "claim": redis.register_script(_CLAIM),
            "renew": redis.register_script(_RENEW),
            "settle": redis.register_script(_SETTLE),
            "status": redis.register_script(_STATUS),
            "read": redis.register_script(_READ),
            "newest": redis.register_script(_NEWEST),
            "rows": redis.register_script(_ROWS),
        }

    def _keys(self, campaign_id: str, *parts: str) -> list[str]:
        return [self._store.key("campaign", campaign_id, part) for part in parts]

    async def _run(self, name: str, keys: list[str], args: Sequence[Any]) -> Any:
        script = self._scripts[name]
        return await self._store.call(lambda: script(keys=keys, args=list(args)))

    async def open(self, campaign_id: str, meta: Mapping[str, Any]) -> None:
        pairs = [str(v) for item in meta.items() for v in item]
        await self._run("open", [*self._keys(campaign_id, "meta", "counts"), self._index, self._live],
                        [campaign_id, meta["created"], _keep(), *pairs])

    async def append(self, campaign_id: str, rows: Sequence[Mapping[str, Any]], states: Sequence[Mapping[str, Any]],
                     ready: Sequence[bool], skipped: int) -> int | None:
        total = None
        keys = self._keys(campaign_id, "meta", "rows", "state", "ready", "counts")
        for start in range(0, len(rows), CHUNK):
            args: list[Any] = []
            for n in range(start, min(start + CHUNK, len(rows))):
                args += [_text(rows[n]), _text(states[n]), "1" if ready[n] else "0"]
            total = await self._run("append", keys, [_keep(), skipped if start == 0 else 0, *args])
            if not total:
                return None
        return int(total) if total is not None else None

    async def claim(self, campaign_id: str, holder: str, now: float, lease_seconds: float) -> Claimed | None:
        keys = self._keys(campaign_id, "meta", "rows", "state", "ready", "active", "holders")
        lease = lease_token(holder)
        found = await self._run("claim", keys, [now, now + lease_seconds, lease, _keep()])
        if not found:
            return None
        row, call, state = found
        return Claimed(str(row), lease, json.loads(call), json.loads(state))

    async def renew(self, campaign_id: str, row: str, holder: str, until: float) -> bool:
        return bool(await self._run("renew", self._keys(campaign_id, "active", "holders"), [row, holder, until]))

    async def note(self, campaign_id: str, row: str, holder: str, state: Mapping[str, Any],
                   counts: Sequence[str]) -> bool:
        return await self._settle(campaign_id, row, holder, state, "-", counts, 0.0) != LOST

    async def settle(self, campaign_id: str, row: str, holder: str, state: Mapping[str, Any], due: float | None,
                     counts: Sequence[str], now: float) -> str:
        return await self._settle(campaign_id, row, holder, state, "" if due is None else due, counts, now)

    async def _settle(self, campaign_id: str, row: str, holder: str, state: Mapping[str, Any], due: float | str,
                      counts: Sequence[str], now: float) -> str:
        keys = [*self._keys(campaign_id, "meta", "state", "ready", "active", "holders", "counts"), self._live]
        args = [row, holder, _text(state), due, now, campaign_id, _keep(), *counts]
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

    async def listed(self, limit: int) -> list[str]:
        return [str(found) for found in await self._run("newest", [self._index], [limit])]

    async def live(self) -> list[str]:
        return [str(found) for found in await self._run("newest", [self._live], [10_000])]

    async def forget(self, campaign_id: str) -> None:
        """A campaign whose records expired, out of the indexes."""
        await self._store.call(lambda: self._store.redis.zrem(self._index, campaign_id))
        await self._store.call(lambda: self._store.redis.zrem(self._live, campaign_id))

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

