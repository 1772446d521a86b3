"""The sessions a key may list (`GET /sessions`): an entry per session, written when its start is
admitted and closed when it ends or fails, indexed by time per caller and for the deployment.

One process keeps them in memory (`MemorySessionIndex`); several replicas in the store
(`StoreSessionIndex`): each session's entry `sessions:entry:<id>`, its end `sessions:end:<id>` and
its failure `sessions:failed:<id>` and its bot's first pipeline error `sessions:noted:<id>` (which
ends nothing: the session goes on), each the first one told (a failure shows over an end), all
sealed (dispatcher/store/message_seal.py: what a key is shown of its sessions is a replica's
word); and two sorted sets scored by the start's time in milliseconds, `sessions:all` and
`sessions:by:<caller id>`. Both are bounded: an entry is kept `KEEP_SECONDS` (a day, as a
timeline), and each set its newest `MAX_ENTRIES`, trimmed by the script that adds to it. A page
reads at most `examine` ids from one set, newest first, below a position (`Position`: the score
and id of the last one examined), then their records in one `MGET`: its cost does not grow with
the sets. One session's records (`entry`) are read the same way, in one `MGET`: they answer
`GET /sessions/{id}` at every replica for a session its provider no longer knows (it ended). A
store that does not answer is answered from this replica's memory
(`ForgivingSessionIndex`), as a timeline is.
"""

from __future__ import annotations

import bisect
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dispatcher.store.client import Store
from dispatcher.store.forgiving import forgiving
from dispatcher.store.message_seal import MessageSeal
from dispatcher.store.together import together

KEEP_SECONDS = 24 * 3600.0  # a day, as a session's timeline (dispatcher/store/timelines.py)
MAX_ENTRIES = 50_000  # per set: a day of a busy deployment; an entry is ~300 bytes
ALL = ""  # the deployment-wide set's caller (an admin's listing)
# A session's notes: its first pipeline error, its cost once it ended, its call handed to a person, the
# phone call it serves (a WhatsApp call's record).
NOTES = ("noted", "costed", "transferred", "call")
_RECORDS = 1 + len(NOTES) + 2  # a session's records in the store: its entry, its notes, its end and its failure

Position = tuple[int, str]  # (the start's time in ms, session id): where a page stopped

# KEYS: the deployment's set, the caller's set, the entry. ARGV: the sealed entry, its score (ms),
# the session id, how long it is kept (ms), the most ids a set keeps.
_OPEN = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local keep, most = tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('SET', KEYS[3], ARGV[1], 'PX', keep)
for i = 1, 2 do
  redis.call('ZADD', KEYS[i], ARGV[2], ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - keep)
  local over = redis.call('ZCARD', KEYS[i]) - most
  if over > 0 then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, over - 1)
    redis.call('ZREM', KEYS[i], unpack(oldest))
  end
  redis.call('PEXPIRE', KEYS[i], keep)
end
return 1
"""
# KEYS[1]: a set. ARGV: the highest score (ms, inclusive), the most ids read. Newest first, scores too.
_BELOW = """
return redis.call('ZRANGE', KEYS[1], ARGV[1], '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, tonumber(ARGV[2]), 'WITHSCORES')
"""


@dataclass(frozen=True)
class IndexPage:
    entries: list[dict[str, Any]]  # newest first, each with its end's fields once it has one
    next: Position | None  # where the next page starts; None: nothing older is kept


def _after(position: Position | None, score: int, session_id: str) -> bool:
    """True when (score, id) comes after `position` in newest-first order (not yet examined)."""
    return position is None or (score, session_id) < position


class MemorySessionIndex:
    def __init__(self, max_entries: int = MAX_ENTRIES, keep_seconds: float = KEEP_SECONDS) -> None:
        self._max, self._keep = max_entries, keep_seconds
        self._entries: dict[str, dict[str, Any]] = {}
        self._sets: dict[str, list[Position]] = {}  # caller (ALL: every one) → (score, id), oldest first

    async def opened(self, entry: Mapping[str, Any]) -> None:
        session_id, score = str(entry["session_id"]), int(float(entry["created"]) * 1000)
        self._entries[session_id] = dict(entry)
        for caller in (ALL, str(entry["caller"])):
            kept = self._sets.setdefault(caller, [])
            bisect.insort(kept, (score, session_id))
            self._trim(caller, kept)

    async def closed(self, session_id: str, end: Mapping[str, Any], *, failure: bool) -> None:
        entry = self._entries.get(session_id)
        if entry is not None and not entry.get("failure") and (failure or "status" not in entry):
            entry.update(end, failure=failure)

    async def noted(self, session_id: str, note: Mapping[str, Any], *, record: str = "noted") -> None:
        entry = self._entries.get(session_id)
        if entry is not None:
            for field, value in note.items():
                entry.setdefault(field, value)

    async def page(self, caller: str, below: Position | None, examine: int) -> IndexPage:
        kept = self._sets.get(caller, [])
        self._trim(caller, kept)
        end = len(kept) if below is None else bisect.bisect_left(kept, below)
        start = max(0, end - examine)
        examined = kept[start:end][::-1]
        entries = [self._shown(self._entries[s]) for _, s in examined if s in self._entries]
        return IndexPage(entries, examined[-1] if examined and start > 0 else None)

    async def entry(self, session_id: str) -> dict[str, Any] | None:
        entry = self._entries.get(session_id)
        return self._shown(entry) if entry is not None else None

    @staticmethod
    def _shown(entry: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in entry.items() if k != "failure"}

    def _trim(self, caller: str, kept: list[Position]) -> None:
        oldest = int((time.time() - self._keep) * 1000)
        cut = max(bisect.bisect_left(kept, (oldest, "")), len(kept) - self._max)
        if cut > 0:
            for _, session_id in kept[:cut]:
                if caller == ALL:
                    self._entries.pop(session_id, None)
            del kept[:cut]


class StoreSessionIndex:
    def __init__(self, store: Store, seal: MessageSeal, max_entries: int = MAX_ENTRIES,
                 keep_seconds: float = KEEP_SECONDS) -> None:
        self._store, self._seal = store, seal
        self._max, self._keep_ms = max_entries, int(keep_seconds * 1000)
        self._open = store.redis.register_script(_OPEN)
        self._below = store.redis.register_script(_BELOW)

    def _set(self, caller: str) -> str:
        return self._store.key("sessions", "all") if caller == ALL else self._store.key("sessions", "by", caller)

    def _entry(self, session_id: str) -> str:
        return self._store.key("sessions", "entry", session_id)

    def _end(self, session_id: str, failure: bool = False) -> str:
        return self._store.key("sessions", "failed" if failure else "end", session_id)

    def _note(self, session_id: str, record: str = "noted") -> str:
        if record not in NOTES:
            raise ValueError(f"a session's note is one of {NOTES}")
        return self._store.key("sessions", record, session_id)

    async def opened(self, entry: Mapping[str, Any]) -> None:
        session_id = str(entry["session_id"])
        key = self._entry(session_id)
        sealed = self._seal.seal_record(key, json.dumps(dict(entry), separators=(",", ":")).encode()).decode()
        keys = [self._set(ALL), self._set(str(entry["caller"])), key]
        args: list[int | str] = [sealed, int(float(entry["created"]) * 1000), session_id, self._keep_ms, self._max]
        await together(self._store).run(self._open, keys, args)  # with the start's `requested` event

    async def closed(self, session_id: str, end: Mapping[str, Any], *, failure: bool) -> None:
        key = self._end(session_id, failure)
        sealed = self._seal.seal_record(key, json.dumps(dict(end), separators=(",", ":")).encode())
        await self._store.call(lambda: self._store.redis.set(key, sealed, px=self._keep_ms, nx=True))

    async def noted(self, session_id: str, note: Mapping[str, Any], *, record: str = "noted") -> None:
        key = self._note(session_id, record)
        sealed = self._seal.seal_record(key, json.dumps(dict(note), separators=(",", ":")).encode())
        await self._store.call(lambda: self._store.redis.set(key, sealed, px=self._keep_ms, nx=True))

    async def page(self, caller: str, below: Position | None, examine: int) -> IndexPage:
        # Read from the position's own millisecond, whose ids up to it were examined already (at most
        # `examine` of them), and one more than a page: whether anything older is left.
        ties = 0 if below is None else examine
        args: list[int | str] = ["+inf" if below is None else below[0], examine + ties + 1]
        raw = await self._store.call(lambda: self._below(keys=[self._set(caller)], args=args))
        pairs = [(int(float(score)), _text(s)) for s, score in zip(raw[0::2], raw[1::2], strict=True)]
        after = [(score, s) for score, s in pairs if _after(below, score, s)]
        examined = after[:examine]
        if not examined:
            return IndexPage([], None)
        keys = [k for _, s in examined for k in self._records(s)]
        values = await self._store.call(lambda: self._store.redis.mget(keys))
        combined = (self._combined(keys[n:n + _RECORDS], values[n:n + _RECORDS]) for n in range(0, len(keys), _RECORDS))
        entries = [entry for entry in combined if entry is not None]
        return IndexPage(entries, examined[-1] if len(after) > examine else None)

    async def entry(self, session_id: str) -> dict[str, Any] | None:
        keys = self._records(session_id)
        values = await self._store.call(lambda: self._store.redis.mget(keys))
        return self._combined(keys, values)

    def _records(self, session_id: str) -> list[str]:
        """Its entry, then its notes, its end and its failure (over the end), each told over the one before."""
        return [self._entry(session_id), *(self._note(session_id, note) for note in NOTES), self._end(session_id),
                self._end(session_id, failure=True)]

    def _combined(self, keys: list[str], values: list[bytes | str | None]) -> dict[str, Any] | None:
        entry = self._opened(keys[0], values[0])
        if entry is not None:
            for key, value in zip(keys[1:], values[1:], strict=True):
                entry.update(self._opened(key, value) or {})
        return entry

    def _opened(self, key: str, value: bytes | str | None) -> dict[str, Any] | None:
        if value is None:
            return None
        record = self._seal.open_record("session_index", key, value.encode() if isinstance(value, str) else value)
        try:
            opened = json.loads(record) if record is not None else None
        except ValueError:
            return None
        return opened if isinstance(opened, dict) else None


class ForgivingSessionIndex:
    def __init__(self, shared: StoreSessionIndex, alone: MemorySessionIndex) -> None:
        self._shared, self._alone = shared, alone

    async def opened(self, entry: Mapping[str, Any]) -> None:
        await forgiving(lambda: self._shared.opened(entry), lambda: self._alone.opened(entry),
                        f"listing entry of session {entry['session_id']}")

    async def closed(self, session_id: str, end: Mapping[str, Any], *, failure: bool) -> None:
        await forgiving(lambda: self._shared.closed(session_id, end, failure=failure),
                        lambda: self._alone.closed(session_id, end, failure=failure),
                        f"listing entry of session {session_id}")

    async def noted(self, session_id: str, note: Mapping[str, Any], *, record: str = "noted") -> None:
        await forgiving(lambda: self._shared.noted(session_id, note, record=record),
                        lambda: self._alone.noted(session_id, note, record=record),
                        f"listing entry of session {session_id}")

    async def entry(self, session_id: str) -> dict[str, Any] | None:
        return await forgiving(lambda: self._shared.entry(session_id), lambda: self._alone.entry(session_id),
                               f"listing entry of session {session_id}")

    async def page(self, caller: str, below: Position | None, examine: int) -> IndexPage:
        return await forgiving(lambda: self._shared.page(caller, below, examine),
                               lambda: self._alone.page(caller, below, examine), "the sessions' listing")


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
