"""A claim that never landed: a machine its provider still lists idle, whose bot's claim record names a
session that will never take it.

A claim records `claim:<bot id>` before it asks the bot, then the provider re-tags the machine
(reserve/claim.py). A replica that dies in between, or a re-tag that failed and a retirement the
provider refused, leaves the machine listed idle with the record naming the session until the bot's
credential runs out, up to a day; on ACI a Terminated group holds its quota slot all that while. The
sweep judges it against the claim itself, timed on the store's clock (store/stranded_claims.py): OVER
when the session ended after the claim (an end naming no machine, told `CLOCK_SLACK_SECONDS` past it,
or this bot's own end; another machine's end is an earlier try's), ABANDONED when the claim is older
than any claim still landing plus the sessions' cap (a bot that lost its channel for good serves on
alone until then) and nothing says the bot serves the session: no report from it, no replica holding
the session's bot or this bot's channel. Since a bot whose replica died re-dials for up to
`BOT_REDIAL_SECONDS` and its owner record outlives that replica one lease, ABANDONED retires only once
held that much longer (at any replica's sweeps); alive in between, it counts afresh. Anything else
keeps the machine: a claim not timed (a previous release's), a session with no timeline, a store that
does not answer (asked again at the next sweep). The retirement then takes the record from that
session in one compare-and-set, so a claim given back and taken by another session keeps its machine.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from dispatcher.reserve.start_times import START_RECORD_SECONDS
from dispatcher.store.coordination import ClaimRecord, Coordination
from dispatcher.store.unavailable import StoreUnavailable

# A claim lands within its start: a 2 s assign, a thaw's 5 s and a returned bot's 15 s wait, the provider's
# re-tag (its request timeouts). A start is timed for at most START_RECORD_SECONDS: one older is long over.
# A bot that took the session then serves at most the sessions' cap (it ends itself), with or without a channel.
LANDS_WITHIN_SECONDS = START_RECORD_SECONDS
# An event's time is its writer's clock (a replica's, a bot's), the claim's the store's: an end this close
# to the claim may be an earlier try's, and is not taken for this claim's.
CLOCK_SLACK_SECONDS = 30.0
# A bot that lost its channel mid-call dials again for this long (bot/channel_session.py: ~61 s of waits
# between 8 dials of up to 10 s each), then goes on without one: it is held again within it, or never.
BOT_REDIAL_SECONDS = 150.0
ENDS = frozenset({"stop_requested", "ended", "machine_ended", "failed"})  # a session's end, on its timeline
STILL_STARTING = frozenset({"start_timeout"})  # a failed wait whose machine may still start: no end


class ClaimState(enum.Enum):
    LIVE = "live"  # its session may be served by this bot, or may still claim it: the machine stays
    OVER = "session over"  # the session ended after the claim
    ABANDONED = "start abandoned"  # the claim is long past and nothing has held the session's bot since
    SUSPECTED = "start abandoned, to be confirmed"  # as ABANDONED, not yet for long enough: it stays
    UNKNOWN = "store not answering"  # asked again at the next sweep
    GONE = "claim record gone"  # given back or run out since it was read: the next sweep sees the bot anew

    @property
    def stranded(self) -> bool:
        return self in (ClaimState.OVER, ClaimState.ABANDONED)


async def claim_state(coordination: Coordination, bot_id: str,
                      longest_session_seconds: float) -> tuple[ClaimState, str | None]:
    """Whether the claim record of `bot_id` (taken by a session, `Claims.retiring` said) is stranded,
    with the session it names; `longest_session_seconds`: the sessions' cap (MAX_SESSION_SECONDS)."""
    stranded = coordination.stranded_claims
    session_id = None
    try:
        record = await stranded.record(bot_id)
        if record is None:  # given back meanwhile: the next sweep takes it
            return ClaimState.GONE, None
        session_id = record.session_id
        state = await _state(coordination, bot_id, record, LANDS_WITHIN_SECONDS + longest_session_seconds)
        if state is ClaimState.ABANDONED:
            waited = stranded.owner_lease_seconds + BOT_REDIAL_SECONDS
            if await stranded.abandoned_for(bot_id, session_id) <= waited:
                state = ClaimState.SUSPECTED
        elif state is ClaimState.LIVE:
            await stranded.not_abandoned(bot_id)
    except StoreUnavailable:
        return ClaimState.UNKNOWN, session_id
    return state, session_id


async def taken_from_stranded(coordination: Coordination, bot_id: str, session_id: str) -> bool | None:
    """Takes the bot's claim record from `session_id` for its retirement: True when taken, False when the
    record no longer names it (the claim was given back, another session's may be there now), None when
    the store does not answer."""
    try:
        return await coordination.stranded_claims.retire(bot_id, session_id)
    except StoreUnavailable:
        return None


async def _state(coordination: Coordination, bot_id: str, record: ClaimRecord, abandoned_after: float) -> ClaimState:
    if record.claimed_at is None:
        return ClaimState.LIVE  # a claim not timed: its record runs out
    events = await coordination.timelines.read_shared(record.session_id)
    state = _judged(events, bot_id, record.claimed_at, record.now - record.claimed_at >= abandoned_after)
    if state is not ClaimState.LIVE and (await coordination.owners.holder(record.session_id) is not None
                                         or await coordination.stranded_claims.link_held(bot_id)):
        return ClaimState.LIVE  # its bot is on a replica's channel: maybe this one
    return state


def _judged(events: list[dict[str, Any]], bot_id: str, claimed_at: float, long_past: bool) -> ClaimState:
    """The claim's state by its session's timeline alone (read in any order: its writers' clocks differ);
    `long_past`: any call its bot took would have ended by now."""
    if not events:
        return ClaimState.LIVE  # nothing says what became of the session, nor of this bot
    if any(_ends_claim(event, bot_id, claimed_at) for event in events):
        return ClaimState.OVER
    if not long_past:
        return ClaimState.LIVE  # it may still be landing, or its bot serve the call with no channel left
    if any(event.get("machine_id") == bot_id for event in events):
        return ClaimState.LIVE  # this bot reported for it: it may serve the session still
    return ClaimState.ABANDONED


def _ends_claim(event: Mapping[str, Any], bot_id: str, claimed_at: float) -> bool:
    """An end of the session since the claim: this bot's own (it serves one session ever), or the session's
    told well after the claim. Another machine's end is that machine's (a try before this claim)."""
    if event.get("event") not in ENDS or (event.get("event") == "failed" and event.get("code") in STILL_STARTING):
        return False
    if event.get("machine_id"):
        return bool(event.get("machine_id") == bot_id)
    at = _at(event)
    return at is not None and at > claimed_at + CLOCK_SLACK_SECONDS


def _at(event: Mapping[str, Any]) -> float | None:
    at = event.get("at")
    return float(at) if isinstance(at, int | float) and not isinstance(at, bool) else None
