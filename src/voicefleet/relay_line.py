"""`voicefleet session ID`'s RELAY line: a WebRTC call's TURN relay share, as its `cost.relay` says
(dispatcher/usage/relay_cost.py): relayed and priced, direct and $0, or why it is not counted."""

from __future__ import annotations

from typing import Any


def relay_line(cost: dict[str, Any]) -> str | None:
    """`0.000012 USD: relayed (relay ↔ prflx), 120000 bytes sent, 100000 received, at 0.09/GB`; None
    when the answer says nothing of the relay (an older dispatcher)."""
    relay = cost.get("relay")
    if not isinstance(relay, dict):
        why = next((line for line in cost.get("not_counted", []) if str(line).startswith("TURN relay")), None)
        return None if why is None else "not counted (" + str(why).removeprefix("TURN relay: ") + ")"
    pair = f"{relay.get('local_candidate')} ↔ {relay.get('remote_candidate')}"
    carried = f"{relay.get('bytes_sent', 0):.0f} bytes sent, {relay.get('bytes_received', 0):.0f} received"
    if not relay.get("relayed"):
        return f"0 USD: direct ({pair}), {carried}"
    if "usd" not in relay:
        return f"not priced: relayed ({pair}), {carried} ({relay.get('why')})"
    return f"{relay['usd']:.6f} USD: relayed ({pair}), {carried}, at {relay.get('usd_per_gb')}/GB"
