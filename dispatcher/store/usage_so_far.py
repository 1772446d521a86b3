"""Where a session's services' use, as its bot last reported it during the call, is kept
(dispatcher/usage/so_far.py takes the reports): one key per session in the coordination store, every
replica's to read, or this process's memory. Below the sessions, whose reads (`GET /sessions/{id}`,
the ended webhook, the cost in `/metrics`) count it for a bot killed before its `ended` report."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any, Protocol

from botchannel.usage import UsageError, parse_usage
from dispatcher.store.client import Store
from dispatcher.store.leases import milliseconds

KEEP_SECONDS = 86_400.0  # as long as a timeline is kept
REMEMBERED = 10_000  # sessions, in one process's memory (and its note of the last report's time)
Rows = tuple[dict[str, Any], ...]


class SoFarKeeping(Protocol):
    async def put(self, session_id: str, rows: Rows) -> None: ...
    async def get(self, session_id: str) -> Rows | None: ...


class StoreSoFar:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def put(self, session_id: str, rows: Rows) -> None:
        key, body = self._store.key("usage", "so-far", session_id), json.dumps(list(rows), separators=(",", ":"))
        await self._store.call(lambda: self._store.redis.set(key, body, px=milliseconds(KEEP_SECONDS)))

    async def get(self, session_id: str) -> Rows | None:
        raw = await self._store.call(lambda: self._store.redis.get(self._store.key("usage", "so-far", session_id)))
        return _rows(raw)


class MemorySoFar:
    def __init__(self) -> None:
        self._rows: OrderedDict[str, Rows] = OrderedDict()

    async def put(self, session_id: str, rows: Rows) -> None:
        self._rows[session_id] = rows
        self._rows.move_to_end(session_id)
        while len(self._rows) > REMEMBERED:
            self._rows.popitem(last=False)

    async def get(self, session_id: str) -> Rows | None:
        return self._rows.get(session_id)


def _rows(raw: object) -> Rows | None:
    """The kept rows, checked again as a report's are (the store is not the bot's to trust blindly)."""
    if raw is None:
        return None
    try:
        return parse_usage(json.loads(raw.decode() if isinstance(raw, bytes) else str(raw)))
    except (ValueError, UsageError):
        return None
