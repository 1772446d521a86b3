"""Each session's timeline: its events (requested, claimed or launched, the bot's reports, errors,
ended), kept a bounded time and length, readable by every replica.

One process keeps them in memory (`MemoryTimelines`: at most `MAX_SESSIONS` sessions, oldest
forgotten first); several replicas in the store (`StoreTimelines`: a list per session,
`timeline:<session id>`, appended, trimmed and given its time to live in one script). A store that
does not answer is answered from this replica's memory (`ForgivingTimelines`): the events this
replica saw are kept, and read back from here until the store answers again.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from typing import Any

from dispatcher.store.client import Store
from dispatcher.store.forgiving import forgiving

MAX_EVENTS = 64  # per session: a session's life is a dozen events; a bot that reports in a loop is cut here
KEEP_SECONDS = 24 * 3600.0  # a day: time to look into yesterday evening's complaint
MAX_SESSIONS = 10_000  # one process's memory: ~64 events of ~200 bytes each at most, per session

# KEYS[1]: the session's list. ARGV: the event (JSON), the most events kept, the time to live (ms).
_APPEND = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


class MemoryTimelines:
    def __init__(self, max_sessions: int = MAX_SESSIONS, max_events: int = MAX_EVENTS,
                 keep_seconds: float = KEEP_SECONDS) -> None:
        self._max_sessions, self._max_events, self._keep = max_sessions, max_events, keep_seconds
        self._lines: OrderedDict[str, tuple[float, deque[dict[str, Any]]]] = OrderedDict()

    async def append(self, session_id: str, event: Mapping[str, Any]) -> None:
        self._forget_old()
        kept = self._lines.pop(session_id, None)
        events = kept[1] if kept is not None else deque(maxlen=self._max_events)
        events.append(dict(event))
        self._lines[session_id] = (time.monotonic() + self._keep, events)  # newest last
        while len(self._lines) > self._max_sessions:
            self._lines.popitem(last=False)

    async def read(self, session_id: str) -> list[dict[str, Any]]:
        self._forget_old()
        kept = self._lines.get(session_id)
        return [dict(event) for event in kept[1]] if kept is not None else []

    def _forget_old(self) -> None:
        now = time.monotonic()
        while self._lines:
            session_id, (until, _) = next(iter(self._lines.items()))
            if until > now:
                return
            del self._lines[session_id]


class StoreTimelines:
    def __init__(self, store: Store, max_events: int = MAX_EVENTS, keep_seconds: float = KEEP_SECONDS) -> None:
        self._store = store
        self._max_events, self._keep_ms = max_events, int(keep_seconds * 1000)
        self._append = store.redis.register_script(_APPEND)

    def _key(self, session_id: str) -> str:
        return self._store.key("timeline", session_id)

    async def append(self, session_id: str, event: Mapping[str, Any]) -> None:
        args: list[int | str] = [json.dumps(dict(event), separators=(",", ":")), self._max_events, self._keep_ms]
        await self._store.call(lambda: self._append(keys=[self._key(session_id)], args=args))

    async def read(self, session_id: str) -> list[dict[str, Any]]:
        raw = await self._store.call(lambda: self._store.redis.lrange(self._key(session_id), 0, -1))
        events = []
        for item in raw:
            try:
                event = json.loads(item)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
        return events


class ForgivingTimelines:
    def __init__(self, shared: StoreTimelines, alone: MemoryTimelines) -> None:
        self._shared, self._alone = shared, alone

    async def append(self, session_id: str, event: Mapping[str, Any]) -> None:
        await forgiving(lambda: self._shared.append(session_id, event), lambda: self._alone.append(session_id, event),
                        f"timeline of session {session_id}")

    async def read(self, session_id: str) -> list[dict[str, Any]]:
        return await forgiving(lambda: self._shared.read(session_id), lambda: self._alone.read(session_id),
                               f"timeline of session {session_id}")
