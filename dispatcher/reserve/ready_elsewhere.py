"""A cold start's time to ready when its bot reports `ready` at a replica other than the one that
took its `POST /start`.

The start's own record (`Reserve._starts`: the monotonic time its launch began) lives in the
launching replica's memory, but the load balancer in front of the bots' channel sends a cold bot
to any replica: with N replicas, (N − 1)/N of the cold starts report `ready` where no record is,
and `voicefleet_start_to_ready_seconds{path="cold"}` lost them (with three replicas the operators'
"time to ready" saw a third of the cold starts, and never one whose bot was slow to dial). Every
replica reads the session's timeline (dispatcher/sessions/timeline.py, in the store), whose
`requested` event the launching replica wrote with its wall clock as the start began: the replica
that hears `ready` times the start from it. Two hosts' wall clocks differ by their NTP error
(milliseconds; AWS and GCP sync to within a millisecond or so), not the seconds a cold start takes.
A warm claim needs none of this: the replica where the bot's channel ends serves the claim and
keeps the record itself (dispatcher/reserve/claim.py).

Once per session: a bot reports `ready` once per session (bot/webrtc_mode.py, bot/daily_mode.py,
bot/websocket_mode.py), and only the replica holding its channel hears it; a second `ready` (a
bot that misbehaves) is not timed, since the timeline already holds an earlier one.
"""

from __future__ import annotations

import logging
import math
from typing import Any, NamedTuple

from dispatcher.releases.names import DEFAULT_RELEASE
from dispatcher.store.coordination import Timelines

log = logging.getLogger("dispatcher.reserve.reserve")


def _at(event: dict[str, Any]) -> float | None:
    at = event.get("at")
    return float(at) if isinstance(at, int | float) and math.isfinite(at) else None


class TimedStart(NamedTuple):
    seconds: float
    release: str  # the session's, as its `requested` event names it


async def seconds_to_ready(timelines: Timelines, session_id: str, *, reported_at: float, now: float,
                           within: float) -> TimedStart | None:
    """From the session's `requested` event to `now` (epoch seconds), if this `ready` (the bot's
    `reported_at`) is the session's first and the start is at most `within` seconds old; else None."""
    try:
        events = await timelines.read(session_id)
    except Exception as exc:  # the timeline is an aid: a metric sample lost, never a start
        log.warning("session %s: its start is not timed (timeline not read: %s)", session_id, type(exc).__name__)
        return None
    requested = [e for e in events if e.get("event") == "requested" and _at(e) is not None]
    this_one = round(reported_at, 3)  # as the timeline recorded it
    if any(e.get("event") == "ready" and (at := _at(e)) is not None and at < this_one for e in events):
        return None  # not the session's first `ready`: it was timed (or lost) then
    if not requested:
        return None  # not started through the dispatcher's API, or the store forgot it
    first = min(requested, key=lambda e: _at(e) or 0.0)
    seconds = now - (_at(first) or 0.0)
    if not 0 <= seconds <= within:
        return None
    release = first.get("release")
    return TimedStart(seconds, release if isinstance(release, str) else DEFAULT_RELEASE)
