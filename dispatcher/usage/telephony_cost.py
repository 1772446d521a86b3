"""A SIP call's minutes at its trunk's price: the `telephony` line of a session's cost.

From the session's timeline, on the dispatcher's own events, none a client can write: the line
(`telephony`: the trunk, its direction, its price a minute and its billing increment, as the SIP edge
said it: dispatcher/usage/trunk_line.py); the answer (an outbound call: its `call_outcome`
`answered`, told by the edge with its secret; an inbound one: its bot's `joined` or `first_audio`,
whichever came first, as the edge answers `200 OK` on either); the end (the first of the caller's
hang-up as the dispatcher's relay saw it, the bot's `ended`, the machine's `machine_ended`). A call
never answered costs no minutes: carriers bill answered time only. The answered seconds are billed in
whole increments, rounded up (Twilio bills each call's minutes rounded up to the next whole minute).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dispatcher.usage.trunk_line import TELEPHONY, TrunkLine, line_of

ENDS = ("caller_hung_up", "ended", "machine_ended")
INBOUND_ANSWERS = ("joined", "first_audio")


@dataclass(frozen=True)
class TelephonyCost:
    line: TrunkLine
    answered: bool
    seconds: float  # from the answer to the end (or now, for a call still up)
    live: bool  # still up: priced until now

    @property
    def billed_seconds(self) -> float:
        increment = self.line.increment_seconds
        return math.ceil(round(self.seconds, 3) / increment) * increment

    @property
    def usd(self) -> float:
        return self.billed_seconds / 60 * self.line.usd_per_minute

    def as_json(self) -> dict[str, Any]:
        return {**self.line.as_json(), "answered": self.answered, "seconds": round(self.seconds, 3),
                "billed_minutes": round(self.billed_seconds / 60, 4), "usd": round(self.usd, 6),
                **({"live": True} if self.live else {})}


def price_telephony(events: Sequence[dict[str, Any]], *, now: float, running: bool) -> TelephonyCost | None:
    """The line's cost, or None for a session with no `telephony` event (no SIP call, or a trunk with no
    price). `running`: the session's machine is still up, so an answered call with no end yet is
    priced until `now`; one not running with no end recorded is priced until its last event."""
    line = next((found for e in events if e.get("event") == TELEPHONY and (found := line_of(e)) is not None), None)
    if line is None:
        return None
    answered_at = _answer(events, line.direction)
    if answered_at is None:
        return TelephonyCost(line, False, 0.0, False)
    end = min((at for e in events if e.get("event") in ENDS and (at := _time(e.get("at"))) is not None
               and at >= answered_at), default=None)
    live = end is None and running
    if end is None:
        end = now if running else max((_time(e.get("at")) or answered_at for e in events), default=answered_at)
    return TelephonyCost(line, True, max(0.0, end - answered_at), live)


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
