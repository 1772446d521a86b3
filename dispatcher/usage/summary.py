"""Days of usage sums (dispatcher/usage/rollups.py) as `GET /usage` answers them: one row per key,
release, day or model, each with its sessions, minutes and cost; a key's own rows only, when asked.

`cost_usd` is the machine and the priced services; `not_priced` counts what it leaves out (a machine
with no price, a service's model with none): never counted as 0 dollars without saying so.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from dispatcher.usage.rollups import iter_sums

BY = ("key", "release", "day", "model")
COUNTS = ("sessions", "seconds", "machine_usd", "unpriced")


def summarise(days: Mapping[date, Mapping[tuple[str, str, str, str], float]], by: str,
              key: str | None = None) -> dict[str, Any]:
    rows: dict[str, dict[str, float]] = {}
    totals: dict[str, float] = {}
    for day, their_key, release, model, measure, value in iter_sums(days):
        if key is not None and their_key != key:
            continue
        _add(totals, model, measure, value)
        if by == "model":
            if not model:
                continue
            group = model
        else:
            group = {"key": their_key, "release": release, "day": day.isoformat()}[by]
        _add(rows.setdefault(group, {}), model, measure, value)
    shown = [{by: group, **_shown(sums, by)} for group, sums in sorted(rows.items())]
    return {"by": by, "rows": shown, "totals": _shown(totals, "")}


def _add(sums: dict[str, float], model: str, measure: str, value: float) -> None:
    if not model:  # the session's own row
        sums[measure] = sums.get(measure, 0.0) + value
    elif measure == "usd":
        sums["services_usd"] = sums.get("services_usd", 0.0) + value
    elif measure == "unpriced":
        sums["services_unpriced"] = sums.get("services_unpriced", 0.0) + value
    else:
        sums[f"units.{measure}"] = sums.get(f"units.{measure}", 0.0) + value


def _shown(sums: Mapping[str, float], by: str) -> dict[str, Any]:
    services = sums.get("services_usd", 0.0)
    not_priced = int(sums.get("unpriced", 0) + sums.get("services_unpriced", 0))
    if by == "model":
        units = {name.split(".", 1)[1]: _number(value) for name, value in sums.items() if name.startswith("units.")}
        return {"cost_usd": round(services, 6), "not_priced": not_priced, "units": units}
    return {"sessions": int(sums.get("sessions", 0)), "minutes": round(sums.get("seconds", 0.0) / 60, 2),
            "machine_usd": round(sums.get("machine_usd", 0.0), 6), "services_usd": round(services, 6),
            "cost_usd": round(sums.get("machine_usd", 0.0) + services, 6), "not_priced": not_priced}


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 3)
