"""A SIP call's minutes at its trunk's price: the `telephony` line of a session's cost.

From the session's timeline, on the dispatcher's own events, none a client can write: the line
(`telephony`: the trunk, its direction, its price a minute and its billing increment, as the SIP edge
said it: dispatcher/usage/trunk_line.py); the answer (an outbound call: its `call_outcome`
`answered`, told by the edge with its secret; an inbound one: its bot's `joined` or `first_audio`,
whichever came first, as the edge answers `200 OK` on either); the end (the first of the caller's
hang-up as the dispatcher's relay saw it, the bot's `ended`, the machine's `machine_ended`). Where the
edge's end of the call (`sip_ended`) counted its answered seconds, from its 200 OK to the BYE on its own
clock, those are priced instead: the dispatcher sees the end a hop or two after the BYE. A call
never answered costs no minutes: carriers bill answered time only. The answered seconds are billed in
whole increments, rounded up (Twilio bills each call's minutes rounded up to the next whole minute).

A cold transfer the edge bridges (docs/sip.md#handing-a-call-to-a-person) adds a leg of its own: the edge's
call to the person through the trunk, told by the edge (with its secret) as `bridged_leg` events after the
session ended `transferred`: `answered`, with the trunk's outbound price, then `ended`. Its minutes, from
the one to the other on the dispatcher's clock and billed in the same increments, join the line as
`bridged`; a leg whose end was never told is priced until now, at most its time limit. A trunk priced for
outbound calls only bridges a priced leg from an inbound call it gave no price: the leg is priced all the
same, and the session's own minutes are told as not priced, never as free.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dispatcher.observability.sip_end import TELEPHONY, counted_end
from dispatcher.usage.trunk_line import TrunkLine, line_of

ENDS = ("caller_hung_up", "ended", "machine_ended")
INBOUND_ANSWERS = ("joined", "first_audio")  # the edge answers an inbound call's 200 OK on either
BRIDGED_LEG = "bridged_leg"  # the timeline's event: a bridged transfer's person's leg, `answered` or `ended`


@dataclass(frozen=True)
class LegCost:
    """One call leg's answered minutes at its line's price."""
    line: TrunkLine
    answered: bool
    seconds: float  # from the answer to the end (or now, for a call still up)
    live: bool  # still up: priced until now

    @property
    def billed_seconds(self) -> float:
        increment = self.line.increment_seconds
        return math.ceil(round(self.seconds, 3) / increment) * increment

    @property
    def own_usd(self) -> float:
        return self.billed_seconds / 60 * self.line.usd_per_minute

    def leg_json(self) -> dict[str, Any]:
        return {**self.line.as_json(), "answered": self.answered, "seconds": round(self.seconds, 3),
                "billed_minutes": round(self.billed_seconds / 60, 4), "usd": round(self.own_usd, 6),
                **({"live": True} if self.live else {})}


@dataclass(frozen=True)
class UnpricedLeg:
    """The session's own call on a trunk with no price for its direction, beside a bridged leg that has one: its
    answered time is told, its minutes are not priced (and never shown as costing 0)."""
    trunk: str
    direction: str
    answered: bool
    seconds: float
    live: bool

    @property
    def why(self) -> str:
        return f"trunk {self.trunk} has no {self.direction} price in the SIP edge's file"

    def leg_json(self) -> dict[str, Any]:
        return {"trunk": self.trunk, "direction": self.direction, "answered": self.answered,
                "seconds": round(self.seconds, 3), "priced": "not priced", "why": self.why,
                **({"live": True} if self.live else {})}


@dataclass(frozen=True)
class TelephonyCost:
    """The session's own call, and the person's leg of a transfer the edge bridged, if any."""
    own: LegCost | UnpricedLeg
    bridged: LegCost | None = None

    @property
    def usd(self) -> float:
        """The priced legs' sum: the session's `telephony_usd`."""
        own = self.own.own_usd if isinstance(self.own, LegCost) else 0.0
        return own + (self.bridged.own_usd if self.bridged is not None else 0.0)

    @property
    def any_live(self) -> bool:
        return self.own.live or (self.bridged is not None and self.bridged.live)

    @property
    def not_counted(self) -> tuple[str, ...]:
        """What `usd` leaves out: the session's own minutes, on a trunk with no price for their direction."""
        return (f"the SIP call's own minutes: {self.own.why}",) if isinstance(self.own, UnpricedLeg) else ()

    def as_json(self) -> dict[str, Any]:
        return {**self.own.leg_json(), **({"bridged": self.bridged.leg_json()} if self.bridged is not None else {})}


def price_telephony(events: Sequence[dict[str, Any]], *, now: float, running: bool) -> TelephonyCost | None:
    """The line's cost, or None for a session with neither a `telephony` event nor a priced bridged leg (no SIP
    call, or a trunk with no price). `running`: the session's machine is still up, so an answered call with no
    end yet is priced until `now`; one not running with no end recorded is priced until its last event.

    A trunk priced one way only (`usd_per_minute = {outbound = …}`) gives an inbound call no `telephony` event,
    yet prices the leg it bridges: that leg is priced, and the session's own leg is told as not priced."""
    line = next((found for e in events if e.get("event") == TELEPHONY and (found := line_of(e)) is not None), None)
    bridged = _bridged(events, now)
    if line is not None:
        return TelephonyCost(LegCost(line, *_answered_time(events, line.direction, now, running)), bridged)
    if bridged is None:
        return None
    # The bridge goes through the session's own trunk; an outbound call's session has its `call_outcome`.
    direction = "outbound" if any(e.get("event") == "call_outcome" for e in events) else "inbound"
    return TelephonyCost(UnpricedLeg(bridged.line.trunk, direction, *_answered_time(events, direction, now, running)),
                         bridged)


def _answered_time(events: Sequence[dict[str, Any]], direction: str, now: float,
                   running: bool) -> tuple[bool, float, bool]:
    """The session's own call: whether it was answered, its seconds from the answer to its end, and whether it
    is still up (priced until now). The edge's own count, where its end told one, before the dispatcher's."""
    if (counted := _edge_counted(events)) is not None:
        return counted > 0, counted, False  # 0: a CANCEL that raced the edge's 200 OK, never answered
    answered_at = _answer(events, direction)
    if answered_at is None:
        return False, 0.0, False
    end = min((at for e in events if e.get("event") in ENDS and (at := _time(e.get("at"))) is not None
               and at >= answered_at), default=None)
    live = end is None and running
    if end is None:
        end = now if running else max((_time(e.get("at")) or answered_at for e in events
                                       if e.get("event") != BRIDGED_LEG), default=answered_at)
    return True, max(0.0, end - answered_at), live


def _bridged(events: Sequence[dict[str, Any]], now: float) -> LegCost | None:
    """The bridged person's leg, from the edge's first `answered` (its line) to its first `ended` after it; one
    not ended yet is priced until now, at most its time limit."""
    answered = next((e for e in events if e.get("event") == BRIDGED_LEG and e.get("leg") == "answered"), None)
    line = line_of(answered) if answered is not None else None
    answered_at = _time(answered.get("at")) if answered is not None else None
    if answered is None or line is None or answered_at is None:
        return None
    end = min((at for e in events if e.get("event") == BRIDGED_LEG and e.get("leg") == "ended"
               and (at := _time(e.get("at"))) is not None and at >= answered_at), default=None)
    limit = answered.get("time_limit_seconds")
    longest = float(limit) if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else math.inf
    if end is not None:
        return LegCost(line, True, min(end - answered_at, longest), False)
    seconds = max(0.0, now - answered_at)
    return LegCost(line, True, min(seconds, longest), seconds < longest)


def _edge_counted(events: Sequence[dict[str, Any]]) -> float | None:
    """The answered seconds the SIP edge counted from its 200 OK to the call's end (`counted_end`: a client's
    own earlier `sip_end` cannot hide them); None where it told none."""
    told = counted_end(events)
    seconds = _time(told.get("answered_seconds")) if told is not None else None
    return None if seconds is None or seconds < 0 else seconds


def _answer(events: Sequence[dict[str, Any]], direction: str) -> float | None:
    if direction == "outbound":
        found = (e.get("at") for e in events if e.get("event") == "call_outcome" and e.get("outcome") == "answered")
    else:
        found = (e.get("at") for e in events if e.get("event") in INBOUND_ANSWERS)
    return min((at for value in found if (at := _time(value)) is not None), default=None)


def _time(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)
