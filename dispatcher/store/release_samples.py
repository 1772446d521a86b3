"""The automatic rollback's sample of each release: in this process's memory (one dispatcher) or in
the store (several replicas), so every replica judges on every replica's sessions and a replica that
restarts reads the sample back instead of starting from nothing.

In the store a release's sample is a sorted set scored by a number the release's record counts up
(entries read past a number are exactly the ones added since), trimmed to the newest `keep` and
expiring `keep_seconds` after its last entry; a session is counted once by a `SET NX` of its id in
the same script, so two replicas that both see its end add it once. Every command is one the
stack's store user already holds (stacks/shared/store_access.py).
"""

from __future__ import annotations

import json
import math
from collections import deque
from typing import Any

from dispatcher.store.client import Store
from dispatcher.store.coordination import SampleRead

COUNTED_SECONDS = 2 * 86_400  # a session id is remembered as judged this long (its timeline is kept a day)

_ADD = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[4]) then return 0 end
local n = tonumber(redis.call('HGET', KEYS[3], 'n') or '0') + 1
redis.call('HSET', KEYS[3], 'n', n)
redis.call('ZADD', KEYS[2], n, n .. ' ' .. ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', n - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return n
"""
_READ = """
return {redis.call('HGET', KEYS[2], 'n') or '0', redis.call('HGET', KEYS[2], 'since') or '0',
        redis.call('ZRANGE', KEYS[1], '(' .. ARGV[1], '+inf', 'BYSCORE')}
"""
_RESTART = """
if tonumber(ARGV[1]) > tonumber(redis.call('HGET', KEYS[1], 'since') or '0') then
  redis.call('HSET', KEYS[1], 'since', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
"""


class MemoryReleaseSamples:
    def __init__(self) -> None:
        self._entries: dict[str, deque[tuple[int, list[Any]]]] = {}
        self._last: dict[str, int] = {}
        self._since: dict[str, float] = {}
        self._counted: dict[str, None] = {}  # session ids, oldest first

    async def add(self, release: str, session_id: str, entry: list[Any], *, keep: int, keep_seconds: float) -> bool:
        if session_id in self._counted:
            return False
        self._counted[session_id] = None
        while len(self._counted) > 4 * keep:  # far more than any release keeps: older ids can no longer matter
            del self._counted[next(iter(self._counted))]
        entries = self._entries.setdefault(release, deque(maxlen=keep))
        self._last[release] = self._last.get(release, 0) + 1
        entries.append((self._last[release], list(entry)))
        return True

    async def read(self, release: str, after: int) -> SampleRead:
        entries = [(n, list(e)) for n, e in self._entries.get(release, ()) if n > after]
        return SampleRead(entries, self._last.get(release, 0), self._since.get(release, 0.0))

    async def restart(self, release: str, since: float, keep_seconds: float) -> None:
        self._since[release] = max(self._since.get(release, 0.0), since)


class StoreReleaseSamples:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._add = store.redis.register_script(_ADD)
        self._read = store.redis.register_script(_READ)
        self._restart = store.redis.register_script(_RESTART)

    def _keys(self, release: str) -> tuple[str, str]:
        return self._store.key("releases", "sample", release), self._store.key("releases", "sample-meta", release)

    async def add(self, release: str, session_id: str, entry: list[Any], *, keep: int, keep_seconds: float) -> bool:
        sample, meta = self._keys(release)
        counted = self._store.key("releases", "judged", session_id)
        value = json.dumps(entry, separators=(",", ":"))
        ttl_ms = max(1, math.ceil(keep_seconds * 1000))
        added = await self._store.call(lambda: self._add(keys=[counted, sample, meta],
                                                         args=[value, keep, ttl_ms, COUNTED_SECONDS]))
        return bool(added)

    async def read(self, release: str, after: int) -> SampleRead:
        sample, meta = self._keys(release)
        last, since, members = await self._store.call(lambda: self._read(keys=[sample, meta], args=[after]))
        entries = []
        for member in members:
            number, _, raw = (member.decode() if isinstance(member, bytes) else str(member)).partition(" ")
            try:
                entry = json.loads(raw)
            except ValueError:
                continue  # written by something else: not a session of ours
            if isinstance(entry, list):
                entries.append((int(number), entry))
        return SampleRead(entries, int(last), float(since))

    async def restart(self, release: str, since: float, keep_seconds: float) -> None:
        _, meta = self._keys(release)
        ttl_ms = max(1, math.ceil(keep_seconds * 1000))
        await self._store.call(lambda: self._restart(keys=[meta], args=[repr(since), ttl_ms]))
