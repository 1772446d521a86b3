"""A SIP call's line: the trunk that carries it, which way, and what its carrier charges a minute.

Only the SIP edge says it (docs/sip.md#what-a-call-costs): for an inbound call in its `POST /start`,
which presents `SIP_EDGE_SECRET` beside the number's API key (dispatcher/phone/edge_secret.py); for
an outbound one in its list of trunks (`GET /trunks`, asked with that secret). The call's token carries
it to the session, whose timeline keeps it as a `telephony` event, and the session's cost prices the
call's answered minutes by it (dispatcher/usage/telephony_cost.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DIRECTIONS = ("inbound", "outbound")
MAX_USD_PER_MINUTE = 10.0  # far past any carrier's minute: a typo (cents for dollars) is refused
MAX_INCREMENT_SECONDS = 60  # carriers bill by the second (1), six seconds, or the whole minute (60)
MAX_TRUNK_CHARS = 64


@dataclass(frozen=True)
class TrunkLine:
    trunk: str
    direction: str  # "inbound" (the trunk called the edge) or "outbound" (the edge placed it)
    usd_per_minute: float
    increment_seconds: int = 60  # each call's answered time is billed in whole increments, rounded up

    def as_json(self) -> dict[str, Any]:
        return {"trunk": self.trunk, "direction": self.direction, "usd_per_minute": self.usd_per_minute,
                "increment_seconds": self.increment_seconds}


def line_of(data: object) -> TrunkLine | None:
    """The line from its JSON (a token's `tel`, a timeline's `telephony` event); None for any other shape:
    a store's record is checked again, never trusted blindly."""
    if not isinstance(data, Mapping):
        return None
    trunk, direction = data.get("trunk"), data.get("direction")
    price, increment = data.get("usd_per_minute"), data.get("increment_seconds", 60)
    if not (isinstance(trunk, str) and 0 < len(trunk) <= MAX_TRUNK_CHARS and direction in DIRECTIONS):
        return None
    if isinstance(price, bool) or not isinstance(price, int | float) or not math.isfinite(price):
        return None
    if not 0 <= price <= MAX_USD_PER_MINUTE:
        return None
    if isinstance(increment, bool) or not isinstance(increment, int) or not 1 <= increment <= MAX_INCREMENT_SECONDS:
        return None
    return TrunkLine(trunk, str(direction), float(price), increment)
