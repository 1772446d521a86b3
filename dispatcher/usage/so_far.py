"""A session's services' use as its bot last reported it during the call (botchannel/usage.py's
`usage.so_far`), kept so a bot killed before its `ended` report still has its use counted
(dispatcher/usage/usage_count.py reads it when the end carries none).

Each report is the whole sum so far: the newest replaces the one before (one key per session in the
coordination store, every replica's to read; one process: its memory), so a report repeated or lost
counts nothing twice, and the rollups add a session once. The key lives as long as a timeline does
(a day). A bot's reports are taken at most one a second: a looping bot costs the store no more.
The session's timeline says once that its bot reports as it goes (`usage_reported`).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from botchannel.contract import RequestFailed
from botchannel.usage import METHOD_USAGE_SO_FAR, UsageError, parse_usage
from dispatcher.channel.bots import BotChannels, BotLink
from dispatcher.store.client import Store, StoreUnavailable
from dispatcher.store.leases import milliseconds

KEEP_SECONDS = 86_400.0
MIN_GAP_SECONDS = 1.0
REMEMBERED = 10_000  # sessions, in one process's memory (and its note of the last report's time)
Rows = tuple[dict[str, Any], ...]
Note = Callable[..., None]  # the timeline's `note`


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


class UsageSoFar:
    def __init__(self, keeping: SoFarKeeping, every_seconds: float, note: Note) -> None:
        self.keeping, self._every, self._note = keeping, every_seconds, note
        self._last: OrderedDict[str, float] = OrderedDict()  # session → its last report taken (monotonic)

    def follow(self, channels: BotChannels) -> None:
        channels.methods[METHOD_USAGE_SO_FAR] = self._reported

    async def _reported(self, link: BotLink, params: Mapping[str, Any]) -> Mapping[str, Any]:
        session_id = link.session_id
        assert session_id is not None  # the channel refuses a request from a bot without a session
        try:
            rows = parse_usage(params.get("usage"))
        except UsageError as exc:
            raise RequestFailed(400, "invalid_usage", str(exc)) from None
        now = time.monotonic()
        last = self._last.get(session_id)
        if last is not None and now - last < MIN_GAP_SECONDS:
            raise RequestFailed(429, "too_often", f"at most one usage report a second; next in {self._every:g}s")
        self._last[session_id] = now
        self._last.move_to_end(session_id)
        while len(self._last) > REMEMBERED:
            self._last.popitem(last=False)
        try:
            await self.keeping.put(session_id, rows)
        except StoreUnavailable:
            raise RequestFailed(503, "store_unavailable", "the usage was not kept: send it again later") from None
        if last is None:
            self._note(session_id, "usage_reported")
        return {"every_seconds": self._every}


def _rows(raw: object) -> Rows | None:
    """The kept rows, checked again as a report's are (the store is not the bot's to trust blindly)."""
    if raw is None:
        return None
    try:
        return parse_usage(json.loads(raw.decode() if isinstance(raw, bytes) else str(raw)))
    except (ValueError, UsageError):
        return None
