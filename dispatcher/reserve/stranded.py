"""A claim that never landed: a machine its provider still lists idle, whose bot's claim record names a
session that will never take it.

A claim records `claim:<bot id>` before it asks the bot, then the provider re-tags the machine
(reserve/claim.py). A replica that dies in between, or a re-tag that failed and a retirement the
provider refused, leaves the machine listed idle with the record naming the session until the bot's
credential runs out, up to a day (store/claims.py); on ACI a Terminated group holds its quota slot
all that while. The sweep asks the store about that session and finds the claim stranded when the
session's timeline says it is over (ended, stopped or failed since its last start), or when its last
start is older than any claim could still be landing (`LANDS_WITHIN_SECONDS`) and nothing says the
session lives on this bot: this bot never reported for it, and no replica holds the session's bot
(its owner record, which the holder's heartbeat renews). Anything else keeps the machine: a session
whose bot this is or may be, one with no timeline (its age is not known: the record runs out), and
a store that does not answer (these reads are never forgiven: the next sweep asks again).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from dispatcher.reserve.start_times import START_RECORD_SECONDS
from dispatcher.store.coordination import Coordination
from dispatcher.store.unavailable import StoreUnavailable

# A claim lands within its start: a 2 s assign, a thaw's 5 s and a returned bot's 15 s wait, the provider's
# re-tag (its request timeouts). A start is timed for at most START_RECORD_SECONDS: one older is long over.
LANDS_WITHIN_SECONDS = START_RECORD_SECONDS
ENDS = frozenset({"stop_requested", "ended", "machine_ended", "failed"})  # a session's end, on its timeline
STILL_STARTING = frozenset({"start_timeout"})  # a failed wait whose machine may still start: no end


class ClaimState(enum.Enum):
    LIVE = "live"  # its session may be served by this bot, or may still claim it: the machine stays
    OVER = "session over"  # the session ended or failed since its last start
    ABANDONED = "start abandoned"  # the start is long past and nothing holds the session's bot
    UNKNOWN = "store not answering"  # asked again at the next sweep

    @property
    def stranded(self) -> bool:
        return self in (ClaimState.OVER, ClaimState.ABANDONED)


async def claim_state(coordination: Coordination, bot_id: str, now: float) -> tuple[ClaimState, str | None]:
    """Whether the claim record of `bot_id` (taken by a session, `Claims.retiring` said) is stranded,
    with the session it names; `now` in epoch seconds, as the timeline's."""
    session_id = await coordination.claims.claimed_for(bot_id)
    if session_id is None:  # gone meanwhile, or the store stopped answering: the next sweep takes it
        return ClaimState.UNKNOWN, None
    try:
        events = sorted(await coordination.timelines.read_shared(session_id), key=lambda e: _at(e) or 0.0)
        state = _judged(events, bot_id, now)
        if state is ClaimState.ABANDONED and await coordination.owners.holder(session_id) is not None:
            state = ClaimState.LIVE  # its bot is on a replica's channel: maybe this one
    except StoreUnavailable:
        return ClaimState.UNKNOWN, session_id
    return state, session_id


def _judged(events: list[dict[str, Any]], bot_id: str, now: float) -> ClaimState:
    """The session's state by its timeline alone (ABANDONED still to be checked with its owner record)."""
    starts = [n for n, event in enumerate(events) if event.get("event") == "requested"]
    if not starts:
        return ClaimState.LIVE  # no timeline: its age is not known
    last = starts[-1]  # a keyed start may be tried again after a failure
    if any(_ends(event) for event in events[last + 1:]):
        return ClaimState.OVER
    started = _at(events[last])
    if started is None or now - started < LANDS_WITHIN_SECONDS:
        return ClaimState.LIVE  # its claim may still be landing (or its start's time is not known)
    if any(event.get("machine_id") == bot_id for event in events):
        return ClaimState.LIVE  # this bot reported for it: it may serve the session still
    return ClaimState.ABANDONED


def _ends(event: Mapping[str, Any]) -> bool:
    return event.get("event") in ENDS and not (event.get("event") == "failed" and event.get("code") in STILL_STARTING)


def _at(event: Mapping[str, Any]) -> float | None:
    at = event.get("at")
    return float(at) if isinstance(at, int | float) and not isinstance(at, bool) else None
