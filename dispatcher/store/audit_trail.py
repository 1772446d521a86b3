"""A capped audit trail (who did what, when), newest first: in this process's memory or in the store,
where every replica appends to one list. The releases' changes keep one (dispatcher/store/release_book.py),
an admin's reads and stops of sessions another key started another (dispatcher/api/admin_access.py).

In the store a trail is a list, oldest first, appended with RPUSH and trimmed in the same script (the
AWS stack's store user holds exactly the commands the dispatcher sends, stacks/shared/store_access.py)."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from typing import Any

from dispatcher.store.client import Store
from dispatcher.store.coordination import HISTORY_KEPT

_NOTE = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
return 1
"""


class MemoryTrail:
    def __init__(self) -> None:
        self._lines: deque[dict[str, Any]] = deque(maxlen=HISTORY_KEPT)

    async def note(self, line: Mapping[str, Any]) -> None:
        self._lines.appendleft(dict(line))

    async def history(self, limit: int) -> list[dict[str, Any]]:
        return list(self._lines)[:limit]


class StoreTrail:
    def __init__(self, store: Store, *name: str) -> None:
        """`name`: the trail's key under the deployment's prefix, such as ("releases", "history")."""
        self._store = store
        self._key = store.key(*name)
        self._note = store.redis.register_script(_NOTE)

    async def note(self, line: Mapping[str, Any]) -> None:
        value = json.dumps(line, separators=(",", ":"))
        await self._store.call(lambda: self._note(keys=[self._key], args=[value, HISTORY_KEPT]))

    async def history(self, limit: int) -> list[dict[str, Any]]:
        raw = await self._store.call(lambda: self._store.redis.lrange(self._key, -max(1, limit), -1))
        lines = []
        for item in reversed(raw):
            try:
                lines.append(json.loads(item))
            except ValueError:
                continue  # a line written by hand, or by something else: not the trail's
        return lines
