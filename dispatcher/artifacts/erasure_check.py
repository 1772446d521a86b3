"""Whether a session's artifacts are still being written somewhere, and whether they were erased
meanwhile: what keeps an erasure complete whichever replica takes it.

The replica that holds a session's bot finishes its artifacts at its end (the recording completed,
then the transcript, the bot's logs and the report), retrying while the store fails. Another
replica knows of it from the session's timeline (shared by every replica): `recording_planned` with
no `recording_ready`, `recording_partial` or `recording_missing` after it is a session whose
artifacts are not all written yet, and its erasure is refused until they are (a crashed replica's
session no longer counts once no replica could still be finishing it). What an erasure could still
miss (a timeline that lost an event) is caught by the finishing replica itself: before each object it
writes, and once after the last, it looks for the session's erasure record, and deletes what it wrote.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from dispatcher.artifacts.keys import erasure_key
from dispatcher.artifacts.store import ArtifactStore

PLANNED = "recording_planned"
FINISHED = frozenset({"recording_ready", "recording_partial", "recording_missing"})
MAX_DAYS_LOOKED = 8  # an erasure record is looked for under this many days, back from today
DAY = 86_400.0


class Erased(Exception):
    """The session's artifacts were erased while its end was being written: what was written is deleted."""


def still_finishing(events: Iterable[Mapping[str, Any]], now: float, longest_seconds: float) -> bool:
    """Whether the timeline shows a recording planned, not yet finished, that a replica could still be
    finishing (planned less than `longest_seconds` ago: a session's longest run, its end's grace and
    its finish's retries)."""
    planned: float | None = None
    for event in events:
        name = event.get("event")
        if name == PLANNED:
            planned = _at(event)
        elif name in FINISHED and planned is not None and _at(event) >= planned:
            planned = None
    return planned is not None and now - planned < longest_seconds


def _at(event: Mapping[str, Any]) -> float:
    at = event.get("at")
    return float(at) if isinstance(at, int | float) and not isinstance(at, bool) else 0.0


async def erasure_recorded(store: ArtifactStore, session_id: str, since: float, now: float | None = None) -> bool:
    """Whether the session was erased since `since` (its start): an erasure record for it, dated any day
    from then to today (at most MAX_DAYS_LOOKED), that does not say it stopped (a hold stopped it)."""
    now = time.time() if now is None else now
    day, keys = now, list[str]()
    while len(keys) < MAX_DAYS_LOOKED:
        keys.append(erasure_key(store.prefix, session_id, day))
        if time.gmtime(day)[:3] <= time.gmtime(since)[:3]:
            break
        day -= DAY
    for key in keys:
        raw = await store.get(key)
        if raw is None:
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            return True  # a record it cannot read is still a record: erased
        if not (isinstance(record, dict) and record.get("stopped")):
            return True
    return False
