"""The traffic record of the releases and its audit trail: in this process's memory (one
dispatcher) or in the store (several replicas, which each read it once a second).

In the store the record is one JSON value, beside its version as the writer spelled it, replaced
only when that version is still the one the writer read (a compare in a Lua script, atomic in the
store), so two admins' changes at two replicas never silently overwrite each other; the trail is a
capped list, oldest first (RPUSH, which the AWS stack's store user already holds: its access string
grants exactly the commands the dispatcher sends, stacks/aws/store_access.py), read newest first.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from typing import Any

from dispatcher.store.client import Store
from dispatcher.store.coordination import HISTORY_KEPT

_WRITE = """
local version = redis.call('HGET', KEYS[1], 'version')
if (version == false and ARGV[3] == '') or version == ARGV[3] then
  redis.call('HSET', KEYS[1], 'record', ARGV[1], 'version', ARGV[2])
  return 1
end
return 0
"""
_NOTE = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
return 1
"""


class MemoryReleaseBook:
    def __init__(self) -> None:
        self._record: dict[str, Any] | None = None
        self._trail: deque[dict[str, Any]] = deque(maxlen=HISTORY_KEPT)

    async def read(self) -> dict[str, Any] | None:
        return None if self._record is None else json.loads(json.dumps(self._record))

    async def write(self, record: Mapping[str, Any], replaces: list[Any] | None) -> bool:
        current = None if self._record is None else list(self._record["version"])
        if current != (None if replaces is None else list(replaces)):
            return False
        self._record = json.loads(json.dumps(record))
        return True

    async def note(self, change: Mapping[str, Any]) -> None:
        self._trail.appendleft(dict(change))

    async def history(self, limit: int) -> list[dict[str, Any]]:
        return list(self._trail)[:limit]


class StoreReleaseBook:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._record_key = store.key("releases", "traffic")
        self._trail_key = store.key("releases", "history")
        self._write = store.redis.register_script(_WRITE)
        self._note = store.redis.register_script(_NOTE)

    async def read(self) -> dict[str, Any] | None:
        raw = await self._store.call(lambda: self._store.redis.hget(self._record_key, "record"))
        try:
            value = json.loads(raw) if raw is not None else None
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    async def write(self, record: Mapping[str, Any], replaces: list[Any] | None) -> bool:
        expected = "" if replaces is None else _version(replaces)
        value, version = json.dumps(record, separators=(",", ":")), _version(record["version"])
        return bool(await self._store.call(lambda: self._write(keys=[self._record_key],
                                                                args=[value, version, expected])))

    async def note(self, change: Mapping[str, Any]) -> None:
        value = json.dumps(change, separators=(",", ":"))
        await self._store.call(lambda: self._note(keys=[self._trail_key], args=[value, HISTORY_KEPT]))

    async def history(self, limit: int) -> list[dict[str, Any]]:
        raw = await self._store.call(lambda: self._store.redis.lrange(self._trail_key, -max(1, limit), -1))
        changes = []
        for item in reversed(raw):
            try:
                changes.append(json.loads(item))
            except ValueError:
                continue
        return changes


def _version(version: Any) -> str:
    return json.dumps(list(version), separators=(",", ":"))
