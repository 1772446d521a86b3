"""What a kept machine end carries (store/handed_over_ends.py): its session's timeline as its owner saw it when the
grace began, so that a sweep finalises the end from it should the owner die before its timeline's writes reached
the store. JSON, oldest event first, at most `MAX_RECORD_BYTES`: a session's life is a dozen events of ~200 bytes,
but its bot's reports (usage rows, text fields) can grow it, so a longer one is trimmed (said in the log) by
dropping the events between its first (`requested`: its key, release) and its last ones (the latest reports
and the machine's end itself), never into a record that lacks its machine's end.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger("dispatcher.store.kept_end_record")

MAX_RECORD_BYTES = 32 * 1024  # twice a timeline event's own bound (store/timelines.py MAX_EVENT_BYTES)
_SEPARATORS = (",", ":")


def encoded(session_id: str, events: Sequence[Mapping[str, Any]]) -> bytes | None:
    """The events as kept, trimmed to fit (None: not even the first and the last fit; said)."""
    kept = [dict(event) for event in events]
    while kept:
        text = json.dumps(kept, separators=_SEPARATORS).encode()
        if len(text) <= MAX_RECORD_BYTES:
            if len(kept) < len(events):
                log.warning("session %s: its kept machine end carries %d of its %d timeline events (%d bytes at most)",
                            session_id, len(kept), len(events), MAX_RECORD_BYTES)
            return text
        if len(kept) <= 2:
            break
        del kept[1]  # the oldest after the first: the latest reports and the end itself are what finalise it
    log.warning("session %s: its machine end kept without its timeline (over %d bytes): a sweep finalises it from "
                "the store's timeline alone", session_id, MAX_RECORD_BYTES)
    return None


def decoded(raw: bytes) -> list[dict[str, Any]] | None:
    """The events kept, or None where `raw` is not a list of events (a record the replicas never wrote)."""
    try:
        events = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(events, list) or not all(isinstance(event, dict) for event in events):
        return None
    return events
