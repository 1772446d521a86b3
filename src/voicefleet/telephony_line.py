"""The `TELEPHONY` line of `voicefleet session ID`: a SIP call's minutes at its trunk's price."""

from __future__ import annotations

from typing import Any


def telephony_line(cost: dict[str, Any]) -> str | None:
    """`0.017 USD: trunk twilio, inbound, 78.2 s answered, billed 2 min at 0.0085/min`; None for a
    session with no priced trunk."""
    line = cost.get("telephony")
    if not isinstance(line, dict):
        return None
    where = f"trunk {line.get('trunk')}, {line.get('direction')}"
    if not line.get("answered"):
        return f"0 USD: {where}, not answered"
    live = ", still up" if line.get("live") else ""
    return (f"{line.get('usd')} USD: {where}, {line.get('seconds')} s answered{live}, billed "
            f"{line.get('billed_minutes')} min at {line.get('usd_per_minute')}/min")
