"""The `TELEPHONY` line of `voicefleet session ID`: a SIP call's minutes at its trunk's price, and a bridged
transfer's leg to the person, as the session's `cost.telephony` and `cost.telephony_usd` say them."""

from __future__ import annotations

from typing import Any


def telephony_line(cost: dict[str, Any]) -> str | None:
    """`0.017 USD: trunk twilio, inbound, 78.2 s answered, billed 2 min at 0.0085/min`, then the bridged leg's
    `; bridged to a person, 0.0194 USD: 95.2 s answered, …`; None for a session with no priced trunk. The
    figure first is the legs' sum (`telephony_usd`); a leg the trunk has no price for says so, never `0 USD`."""
    line = cost.get("telephony")
    if not isinstance(line, dict):
        return None
    total = cost.get("telephony_usd", line.get("usd"))
    shown = f"{_usd(total)} USD: trunk {line.get('trunk')}, {line.get('direction')}, {_minutes(line)}"
    bridged = line.get("bridged")
    if isinstance(bridged, dict):
        shown += f"; bridged to a person, {_usd(bridged.get('usd'))} USD: {_minutes(bridged)}"
    return shown


def _minutes(leg: dict[str, Any]) -> str:
    if not leg.get("answered"):
        return "not answered"
    answered = f"{leg.get('seconds')} s answered" + (", still up" if leg.get("live") else "")
    if "usd" not in leg:  # the trunk has no price for this leg's direction
        return f"{answered}, not priced ({leg.get('why')})"
    return f"{answered}, billed {leg.get('billed_minutes')} min at {leg.get('usd_per_minute')}/min"


def _usd(value: object) -> str:
    return "0" if value == 0 else str(value)
