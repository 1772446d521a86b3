"""The traffic record of the releases and its audit trail: in this process's memory (one
dispatcher) or in the store (several replicas, which each read it once a second).

In the store the record is one JSON value, beside its version as the writer spelled it, replaced
only when that version is still the one the writer read (a compare in a Lua script, atomic in the
store), so two admins' changes at two replicas never silently overwrite each other; the trail is a
capped list (dispatcher/store/audit_trail.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dispatcher.store.audit_trail import MemoryTrail, StoreTrail
from dispatcher.store.client import Store

# Shared with the runtime settings' record (runtime_book.py): a record replaced only at the version read.
WRITE_AT_VERSION = """
local version = redis.call('HGET', KEYS[1], 'version')
if (version == false and ARGV[3] == '') or version == ARGV[3] then
  redis.call('HSET', KEYS[1], 'record', ARGV[1], 'version', ARGV[2])
  return 1
end
return 0
"""
READ_WITH_VERSION = """
return {redis.call('HGET', KEYS[1], 'record'), redis.call('HGET', KEYS[1], 'version')}
"""


class MemoryReleaseBook:
    def __init__(self) -> None:
        self._record: dict[str, Any] | None = None
        self._trail = MemoryTrail()

    async def read(self) -> dict[str, Any] | None:
        return None if self._record is None else json.loads(json.dumps(self._record))

    async def write(self, record: Mapping[str, Any], replaces: list[Any] | None) -> bool:
        current = None if self._record is None else list(self._record["version"])
        if current != (None if replaces is None else list(replaces)):
            return False
        self._record = json.loads(json.dumps(record))
        return True

    async def note(self, change: Mapping[str, Any]) -> None:
        await self._trail.note(change)

    async def history(self, limit: int) -> list[dict[str, Any]]:
        return await self._trail.history(limit)


class StoreReleaseBook:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._record_key = store.key("releases", "traffic")
        self._trail = StoreTrail(store, "releases", "history")
        self._read = store.redis.register_script(READ_WITH_VERSION)
        self._write = store.redis.register_script(WRITE_AT_VERSION)

    async def read(self) -> dict[str, Any] | None:
        """The record; for one that is no JSON object, or whose version is not the one stored beside it
        (written by hand, or by something else), just that stored version: what a writer must name to
        replace it, so a broken record is rewritten instead of refusing every change for good."""
        # One script, so that the record and its version are of one write (HMGET is not the store user's).
        raw, version = _pair(await self._store.call(lambda: self._read(keys=[self._record_key])))
        if raw is None and version is None:
            return None
        value, stored = _json(raw), _json(version)
        if isinstance(value, dict) and version is not None and _version_or_none(value.get("version")) == version:
            return value
        return {"version": stored} if isinstance(stored, list) else {}  # {}: replaced by a write that names none

    async def write(self, record: Mapping[str, Any], replaces: list[Any] | None) -> bool:
        expected = "" if replaces is None else _version(replaces)
        value, version = json.dumps(record, separators=(",", ":")), _version(record["version"])
        return bool(await self._store.call(lambda: self._write(keys=[self._record_key],
                                                                args=[value, version, expected])))

    async def note(self, change: Mapping[str, Any]) -> None:
        await self._trail.note(change)

    async def history(self, limit: int) -> list[dict[str, Any]]:
        return await self._trail.history(limit)


def _version(version: Any) -> str:
    return json.dumps(list(version), separators=(",", ":"))


def _version_or_none(version: object) -> str | None:
    return _version(version) if isinstance(version, list) else None


def _pair(answer: Any) -> tuple[str | None, str | None]:
    """The read script's answer, [record, version], a missing field None (padded, whatever the server's
    conversion of Lua's false in a table)."""
    values = [*list(answer or []), None, None]
    return values[0] or None, values[1] or None


def _json(raw: str | bytes | None) -> object:
    try:
        return json.loads(raw) if raw is not None else None
    except ValueError:
        return None
