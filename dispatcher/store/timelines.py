"""Each session's timeline: its events (requested, claimed or launched, the bot's reports, errors, ended),
kept a bounded time and length, readable by every replica. Past `MAX_EVENTS` its opening (the first
`HEAD_EVENTS`: `requested`, read by usage, costs, webhooks, the release judge) stays and the oldest event
after it goes: a bot that reports in a loop cannot push out how its session began. Of each of the bot's
kinds it keeps at most `KIND_BOUNDS`, whichever replicas append them (a bot that dials its channel again
at another replica adds nothing), so neither can such a bot push out how the call ended (`sip_ended`).

One process keeps them in memory (`MemoryTimelines`: at most `MAX_SESSIONS` sessions, oldest forgotten
first); several replicas in the store (`StoreTimelines`: two lists per session, its opening
`timeline:<session id>` and its newest `timeline-tail:<session id>`, and a hash of its bot's kinds' counts,
appended, trimmed, counted and given their time to live in one script that never copies an event). Only a
session's `requested` event opens its timeline; any other event is appended to an existing one and dropped
otherwise, so what names a session that never started (a stop of a made-up id, a report for a session long
forgotten) neither grows the store nor evicts others' timelines. A store that does not answer is answered
from this replica's memory (`ForgivingTimelines`), where the events this replica saw are kept meanwhile.

In the store each event is sealed with the replicas' record key (dispatcher/store/message_seal.py,
`seal_record`, bound to the session's opening list): `GET /sessions/{id}` shows a session's trace id and
last error to its key, so an event a store writer pushed would otherwise be told to that key as its
session's own. One that does not open is dropped and counted
(`voicefleet_store_messages_refused_total{channel="timeline"}`), as is one sealed larger than
`MAX_EVENT_BYTES`, never sent. A read takes at most `MAX_EVENTS` of each list, each event at most
`MAX_EVENT_BYTES`: a list a store writer grew without bound costs a read no more than a kept one. A store
writer can still delete a list or the counts, or copy one of a session's own events within it again."""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from botchannel.contract import REPORT_EVENTS
from dispatcher.observability.log_text import shown
from dispatcher.store.client import Store
from dispatcher.store.forgiving import forgiving
from dispatcher.store.message_seal import MessageSeal
from dispatcher.store.together import together

log = logging.getLogger("dispatcher.store.timelines")

MAX_EVENTS = 64  # per session: a session's life is a dozen events; a bot that reports in a loop is cut here
HEAD_EVENTS = 16  # never trimmed: a session's opening (its `requested` first), whatever comes after
KEEP_SECONDS = 24 * 3600.0  # a day: time to look into yesterday evening's complaint
MAX_EVENT_BYTES = 16 * 1024  # sealed; a report's text fields are 512 characters each (botchannel/contract.py)
MAX_SESSIONS = 10_000  # one process's memory: ~64 events of ~200 bytes each at most, per session
OPENS = "requested"  # the one event that starts a timeline (a start that reached admission)
REPEATED = frozenset({"error", "slow_answer"})  # a session's reports a bot may repeat: each a turn's or service's
MAX_REPEATED = 8  # with the others' one each and ended's 4: 24 at most, well inside a timeline's 64 events
# How many of each of the bot's kinds of event (its reports, botchannel/contract.py) a session's timeline keeps,
# whichever replicas append them: as many as one replica passes on (dispatcher/channel/report_caps.py), so a bot
# that dials its channel again at another replica adds nothing. `ended` up to 4: the dispatcher writes its own
# for a call not answered or never placed (dispatcher/api/call_outcomes.py, once), and the bot's, which carries
# its usage, must still find room beside it and beside copies heard at other replicas. Any other kind is the
# dispatcher's own, not bounded by kind. Each is counted as it is appended, one past its bound dropped.
KIND_BOUNDS: dict[str, int] = {**{kind: MAX_REPEATED if kind in REPEATED else 1 for kind in REPORT_EVENTS},
                               "ended": 4, "machine_started": 1}  # the latter: noted at each hello of a cold bot

# KEYS: the session's opening (`timeline:<session>`), its newest (`timeline-tail:<session>`) and its counts of
# the bot's kinds (`timeline-kinds:<session>`, a hash), one slot (the prefix's hash tag). ARGV: the event
# (JSON), the most events kept, the time to live (ms), '1' when the event may open the timeline (else it is
# appended only to one that exists), the head kept (0 < head < most), then, for a kind `KIND_BOUNDS` names,
# the kind and its bound: one over it is dropped (2); none (a kind not bounded): no bound. The opening takes
# events until it holds `head` of them, the newest list the rest, trimmed to its last `most - head`: an append
# is an RPUSH, an LTRIM of at most one item, a HINCRBY (and its PEXPIRE) for a bounded kind and three PEXPIREs,
# whatever the events weigh (the store user has no LLEN: an item at `head - 1` says the opening is full).
# Mixed releases in a rolling deploy: a list the previous release wrote (one key, its newest `most` items) is an
# opening already full, so this script appends to the newest list, and the read gives that list whole, then the
# newest. The previous release's script (RPUSH, then LTRIM to its newest `most`) appends to the opening list
# alone, read before this release's newest ones, and reads only that list: it misses the newest list's events of
# a session past `head` events, until the deploy is over.
_APPEND = """
local most, head = tonumber(ARGV[2]), tonumber(ARGV[5])
local full = #redis.call('LRANGE', KEYS[1], head - 1, head - 1) > 0
if not full and ARGV[4] ~= '1' and #redis.call('LRANGE', KEYS[1], 0, 0) == 0 then
  return 0
end
local bound = tonumber(ARGV[7])
if ARGV[6] and bound then
  local count = redis.call('HINCRBY', KEYS[3], ARGV[6], 1)
  redis.call('PEXPIRE', KEYS[3], ARGV[3])  -- at once: a write of the lists refused below leaves no count to outlive it
  if count > bound then
    return 2
  end
end
if full then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  redis.call('LTRIM', KEYS[2], head - most, -1)
else
  redis.call('RPUSH', KEYS[1], ARGV[1])
end
for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, ARGV[3]) end
return 1
"""
OVER_KIND = 2  # the script's answer for an event past its kind's bound (1: appended, 0: no timeline open)
# KEYS: the opening, the newest. ARGV: the most events kept, the most bytes of one. Only LRANGE: what the
# store user may run (stacks/shared/store_access.py), and at most `most` items of each list however long
# a store writer grew it: the opening's first (the whole of a list the previous release wrote), the
# newest list's last, so a read never costs more than twice what one list keeps.
_READ = """
local most, within = tonumber(ARGV[1]), tonumber(ARGV[2])
local items = redis.call('LRANGE', KEYS[1], 0, most - 1)
for _, item in ipairs(redis.call('LRANGE', KEYS[2], -most, -1)) do items[#items + 1] = item end
local kept = {}
for _, item in ipairs(items) do
  if #item <= within then kept[#kept + 1] = item end
end
return kept
"""


def _bound_of(event: Mapping[str, Any]) -> tuple[str | None, int]:
    """The event's kind and how many of it a timeline keeps, where `KIND_BOUNDS` bounds it (else None)."""
    kind = event.get("event")
    if isinstance(kind, str) and kind in KIND_BOUNDS:
        return kind, KIND_BOUNDS[kind]
    return None, 0


def _kept_head(head_events: int, max_events: int) -> int:
    """The head kept before the newest: at least the opening event, and room for the newest one."""
    if not 0 < head_events < max_events:
        raise ValueError(f"a timeline's head ({head_events}) is its first events, fewer than all ({max_events})")
    return head_events


class MemoryTimelines:
    def __init__(self, max_sessions: int = MAX_SESSIONS, max_events: int = MAX_EVENTS,
                 keep_seconds: float = KEEP_SECONDS, head_events: int = HEAD_EVENTS) -> None:
        self._max_sessions, self._max_events, self._keep = max_sessions, max_events, keep_seconds
        self._head = _kept_head(head_events, max_events)
        # Per session: until when it is kept, its events, and how many of each bounded kind it kept.
        self._lines: OrderedDict[str, tuple[float, list[dict[str, Any]], dict[str, int]]] = OrderedDict()

    async def append(self, session_id: str, event: Mapping[str, Any]) -> None:
        self.remember(session_id, event)

    def remember(self, session_id: str, event: Mapping[str, Any]) -> None:
        """`append`, for a caller that may not wait (a timeline listener)."""
        self._forget_old()
        kept = self._lines.get(session_id)
        if kept is None and event.get("event") != OPENS:
            return
        _, events, counts = kept if kept is not None else (0.0, [], {})
        kind, bound = _bound_of(event)
        if kind is not None:
            counts[kind] = counts.get(kind, 0) + 1
            if counts[kind] > bound:
                return  # dropped, as the store drops it: the timeline is as it was
        events.append(dict(event))
        if len(events) > self._max_events:
            del events[self._head]  # the oldest after the opening
        self._lines.pop(session_id, None)
        self._lines[session_id] = (time.monotonic() + self._keep, events, counts)  # newest last
        while len(self._lines) > self._max_sessions:
            self._lines.popitem(last=False)

    async def read(self, session_id: str) -> list[dict[str, Any]]:
        return self.recalled(session_id)

    def recalled(self, session_id: str) -> list[dict[str, Any]]:
        """`read`, for a caller that may not wait."""
        self._forget_old()
        kept = self._lines.get(session_id)
        return [dict(event) for event in kept[1]] if kept is not None else []

    async def read_shared(self, session_id: str) -> list[dict[str, Any]]:
        return await self.read(session_id)  # one process: its memory is every replica's

    def _forget_old(self) -> None:
        now = time.monotonic()
        while self._lines:
            session_id, (until, _, _) = next(iter(self._lines.items()))
            if until > now:
                return
            del self._lines[session_id]


class StoreTimelines:
    def __init__(self, store: Store, seal: MessageSeal, max_events: int = MAX_EVENTS,
                 keep_seconds: float = KEEP_SECONDS, head_events: int = HEAD_EVENTS) -> None:
        self._store = store
        self._seal = seal
        self._max_events, self._keep_ms = max_events, int(keep_seconds * 1000)
        self._head = _kept_head(head_events, max_events)
        self._append = store.redis.register_script(_APPEND)
        self._read = store.redis.register_script(_READ)

    def _keys(self, session_id: str) -> list[str]:
        """The opening's list, whose name every event is sealed with (and the previous release's one list), the
        newest, then the counts of the bot's kinds."""
        return [self._store.key("timeline", session_id), self._store.key("timeline-tail", session_id),
                self._store.key("timeline-kinds", session_id)]

    async def append(self, session_id: str, event: Mapping[str, Any]) -> None:
        keys = self._keys(session_id)
        sealed = self._seal.seal_record(keys[0], json.dumps(dict(event), separators=(",", ":")).encode())
        if len(sealed) > MAX_EVENT_BYTES:  # the read would drop it: not sent
            self._seal.refuse_record("timeline", "oversized")
            log.warning("session %s: a %s event of %d bytes sealed, past the %d a timeline keeps, is dropped",
                        shown(session_id), shown(str(event.get("event"))), len(sealed), MAX_EVENT_BYTES)
            return
        opens = "1" if event.get("event") == OPENS else "0"
        args: list[int | str] = [sealed.decode(), self._max_events, self._keep_ms, opens, self._head]
        kind, bound = _bound_of(event)
        if kind is not None:
            args += [kind, bound]
        # With what the start writes at the same moment (its index entry, its launch's record): one trip.
        if await together(self._store).run(self._append, keys, args) == OVER_KIND:
            log.info("session %s: a %s event past the %d its timeline keeps is dropped", shown(session_id), kind, bound)

    async def read(self, session_id: str) -> list[dict[str, Any]]:
        keys = self._keys(session_id)[:2]
        key = keys[0]
        args = [self._max_events, MAX_EVENT_BYTES]
        raw = await self._store.call(lambda: self._read(keys=keys, args=args))
        events = []
        for item in raw:
            opened = self._seal.open_record("timeline", key, item.encode() if isinstance(item, str) else item)
            if opened is None:
                continue  # not a replica's (counted)
            try:
                event = json.loads(opened)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
        return events

    async def read_shared(self, session_id: str) -> list[dict[str, Any]]:
        return await self.read(session_id)


class ForgivingTimelines:
    def __init__(self, shared: StoreTimelines, alone: MemoryTimelines) -> None:
        self._shared, self._alone = shared, alone

    async def append(self, session_id: str, event: Mapping[str, Any]) -> None:
        await forgiving(lambda: self._shared.append(session_id, event), lambda: self._alone.append(session_id, event),
                        f"timeline of session {session_id}")

    async def read(self, session_id: str) -> list[dict[str, Any]]:
        return await forgiving(lambda: self._shared.read(session_id), lambda: self._alone.read(session_id),
                               f"timeline of session {session_id}")

    async def read_shared(self, session_id: str) -> list[dict[str, Any]]:
        return await self._shared.read(session_id)  # never this replica's memory: StoreUnavailable
