"""A SIP call's end as the SIP edge saw it (sipedge/): who hung up and how, the SIP status and the
`Reason:` where there was one. The edge tells it (`POST /sessions/{id}/sip_end`: dispatcher/api/
routers/sip_end.py) and the session's timeline keeps it as `sip_ended`; the `session.ended`
webhook and the call's report.json carry it as `sip`.

When the bot's side ends first, the edge learns it only as the call's stream closes: its end (and its
count of the call's answered seconds, which price the call) comes after the session's `ended`. What is
made once at that end (the webhook, the report, the usage count) waits for it until
`EDGE_END_WAIT_SECONDS` past the session's `ended` (`awaits_edge_end`, `edge_end_deadline`, `with_edge_end`),
then goes with the dispatcher's own view."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

SIP_ENDED = "sip_ended"
FIELDS = ("by", "how", "status", "reason")
# The edge tells its own BYE's end as soon as it sent it, a few milliseconds after the stream's close; it
# tries for longer (5 s a try, three tries: sipedge/dispatcher_link.py), but an end not here within one try's
# bound is one whose edge or whose way here is in trouble, and a session's end does not wait on that.
EDGE_END_WAIT_SECONDS = 5.0
EDGE_END_LOOK_SECONDS = 0.25  # how often the timeline is read again meanwhile
TELEPHONY = "telephony"  # a priced call's line on the timeline (dispatcher/usage/trunk_line.py writes it)
SIP_INBOUND = "sip_inbound"  # an unpriced call a SIP edge started with its own credential (its token's `edge`)
# Ends the edge tells uncounted only before any answer: a CANCEL, its refusal, PJSIP's own end of a call never
# answered (after a 200 OK the edge tells `failed` with a count, 0: sipedge/call_flow.py `timed`).
NEVER_ANSWERED = ("cancel", "refused", "failed")
Read = Callable[[str], Awaitable[list[dict[str, Any]]]]


def counted_end(events: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The first end told with the edge's count of the call's answered time (only the edge's own credential
    sends one: dispatcher/api/routers/sip_end.py), or None."""
    return next((e for e in events if e.get("event") == SIP_ENDED and "answered_seconds" in e), None)


def sip_end_of(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The call's SIP end from its timeline, or None: not a SIP call, or its end not told (yet). The counted
    end (`counted_end`), else the first told."""
    told = counted_end(events) or next((e for e in events if e.get("event") == SIP_ENDED), None)
    return None if told is None else {name: told[name] for name in FIELDS if told.get(name) is not None}


def awaits_edge_end(events: Sequence[dict[str, Any]]) -> bool:
    """Whether the edge's counted end is still to come: a call the edge made, by the timeline's events only
    the edge's credential writes (an inbound call's `telephony` line, priced, or its `sip_inbound` mark, unpriced;
    a call it placed through a trunk, its `call_outcome` answered), with no counted end yet, nor an end that says
    it was never answered (a CANCEL, the edge's refusal, PJSIP's own end: nothing to count). Not the bot's word on
    whether it was answered: a bot that never says `joined` must not spare its call the edge's count. A call
    through an edge without a credential is not known here as the edge's: its end is not waited for."""
    if counted_end(events) is not None or any(
            e.get("event") == SIP_ENDED and e.get("how") in NEVER_ANSWERED for e in events):
        return False
    placed = any(e.get("event") == "call_outcome" and e.get("outcome") == "answered" and isinstance(e.get("trunk"), str)
                 for e in events)
    inbound = any(e.get("event") == TELEPHONY and e.get("direction") == "inbound" or e.get("event") == SIP_INBOUND
                  for e in events)
    return placed or inbound


def edge_end_deadline(events: Sequence[dict[str, Any]], now: float) -> float:
    """When (epoch seconds) the edge's counted end stops being waited for: EDGE_END_WAIT_SECONDS past the
    session's first `ended`, so what is made long after the end (a sweep of left-over sessions, a webhook
    looked at late) waits for none; never later than that long past `now` (the replica that wrote `ended` may
    run its clock ahead), nor counted from before a timeline's end that has no `ended` yet."""
    ends = [at for e in events if e.get("event") == "ended"
            and isinstance(at := e.get("at"), int | float) and not isinstance(at, bool) and math.isfinite(at)]
    return min([*ends, now]) + EDGE_END_WAIT_SECONDS


async def with_edge_end(read: Read, session_id: str, closing: asyncio.Event) -> list[dict[str, Any]]:
    """The session's timeline, read again until the edge's counted end is in it, at most until
    `edge_end_deadline` (or until `closing` is set: a replica that stops counts what it has); at once where none
    is awaited."""
    events = await read(session_id)
    now = time.time()
    deadline = time.monotonic() + (edge_end_deadline(events, now) - now)
    while awaits_edge_end(events) and not closing.is_set() and (left := deadline - time.monotonic()) > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closing.wait(), min(EDGE_END_LOOK_SECONDS, left))
        events = await read(session_id)
    return events
