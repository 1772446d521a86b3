"""Grouped usage sums (dispatcher/usage/rollups.py) as `GET /usage` answers them: one row per key,
release, day or model, each with its sessions, minutes and cost, and their total.

`cost_usd` is the machine, the priced services, the priced TURN relay and a SIP call's minutes at its
trunk's price; `not_priced` counts what it
leaves out (a machine with no price, a service's model with none, a relayed call's relay with none):
never counted as 0 dollars without saying so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dispatcher.usage.rollups import Grouped

BY = ("key", "release", "day", "model")
SERVICE = "m."  # a service's own measures, as the rollups group them


def summarise(grouped: Grouped, by: str) -> dict[str, Any]:
    rows = [{by: group, **_shown(sums, by)} for group, sums in sorted(grouped.items()) if group]
    return {"by": by, "rows": rows, "totals": _shown(grouped.get("", {}), "")}


def _shown(sums: Mapping[str, float], by: str) -> dict[str, Any]:
    services = sums.get(SERVICE + "usd", 0.0)
    not_priced = int(sums.get("unpriced", 0) + sums.get(SERVICE + "unpriced", 0) + sums.get("relay_unpriced", 0))
    if by == "model":
        units = {name[len(SERVICE):]: _number(value) for name, value in sums.items()
                 if name.startswith(SERVICE) and name not in (SERVICE + "usd", SERVICE + "unpriced")}
        return {"cost_usd": round(services, 6), "not_priced": not_priced, "units": units}
    machine, relay, telephony = sums.get("machine_usd", 0.0), sums.get("relay_usd", 0.0), sums.get("telephony_usd", 0.0)
    shown: dict[str, Any] = {
        "sessions": int(sums.get("sessions", 0)), "minutes": round(sums.get("seconds", 0.0) / 60, 2),
        "machine_usd": round(machine, 6), "services_usd": round(services, 6), "relay_usd": round(relay, 6),
        "telephony_usd": round(telephony, 6), "cost_usd": round(machine + services + relay + telephony, 6),
        "not_priced": not_priced}
    if sums.get("eval_sessions"):  # of which evals: already in the figures above (an eval is billed)
        shown["eval"] = {"sessions": int(sums["eval_sessions"]),
                         "minutes": round(sums.get("eval_seconds", 0.0) / 60, 2),
                         "cost_usd": round(sums.get("eval_usd", 0.0), 6)}
    return shown


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 3)
