"""`GET /usage` with several regions: each region keeps its own rollups (its own store), so the
region asked also asks every peer the same question (signed and relayed, dispatcher/api/region_listing.py's
`peer_json`, within its time and size bounds) and adds their answers to its own: one total for the
deployment. A peer that is down or answers anything but usage is named in `unreachable_regions` and
left out of the sums, never silently. The peer's answer is not signed (whoever is on the path to its
URL writes it), so it is usage only when every sum in it is a finite number at least 0: else a NaN
reached the answer, a negative count took use off the deployment's, a list for totals was a 500."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any

from dispatcher.api.region_listing import peer_json
from dispatcher.api.state import AppState

ROUNDED = 6  # dollars and minutes, as one region answers them (dispatcher/usage/summary.py)


async def everywhere(state: AppState, query: Mapping[str, str], headers: Mapping[str, str],
                     here: dict[str, Any]) -> dict[str, Any]:
    """`here` (this region's answer) with every peer's added: its rows per group and its totals."""
    names = list(state.peers.regions.peers)
    answers = await asyncio.gather(*(peer_json(state, name, "/usage", query, headers) for name in names))
    by = str(here.get("by"))
    rows = {str(row.get(by)): dict(row) for row in here.get("rows", [])}
    totals = dict(here.get("totals", {}))
    counted, unreachable = [state.settings.region], []
    for name, answer in zip(names, answers, strict=True):
        if isinstance(answer, str) or not _is_usage(answer, by):
            problem = answer if isinstance(answer, str) else "it answered something other than its usage"
            unreachable.append({"region": name, "problem": problem})
            continue
        for row in answer["rows"]:
            group = str(row.get(by))
            rows[group] = _added(rows.get(group, {by: row.get(by)}), row, skip=by)
        totals = _added(totals, answer.get("totals") or {})
        counted.append(name)
    return {**here, "rows": [rows[group] for group in sorted(rows)], "totals": totals,
            "regions": sorted(counted), "unreachable_regions": unreachable}


def _is_usage(answer: Mapping[str, Any], by: str) -> bool:
    """Whether a peer's answer is usage grouped `by`: rows and totals objects whose sums are all sound."""
    rows, totals = answer.get("rows"), answer.get("totals") or {}
    return (answer.get("by") == by and isinstance(rows, list) and all(isinstance(row, dict) for row in rows)
            and isinstance(totals, dict) and all(_sound(row) for row in [*rows, totals]))


def _sound(sums: Mapping[str, Any]) -> bool:
    """Every number in `sums` (nested: an eval's, a model's units) finite and at least 0."""
    for value in sums.values():
        if isinstance(value, dict) and not _sound(value):
            return False
        if isinstance(value, int | float) and not isinstance(value, bool) and not (
                0 <= value and (isinstance(value, int) or math.isfinite(value))):
            return False
    return True


def _added(mine: Mapping[str, Any], theirs: Mapping[str, Any], skip: str = "") -> dict[str, Any]:
    """The sums of two answers' rows, field by field (nested: an eval's, a model's units)."""
    out = dict(mine)
    for field, value in theirs.items():
        if field == skip:
            continue
        have = out.get(field)
        if isinstance(value, dict):
            out[field] = _added(have if isinstance(have, dict) else {}, value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            base = have if isinstance(have, int | float) and not isinstance(have, bool) else 0
            total = base + value
            out[field] = total if isinstance(total, int) else round(total, ROUNDED)
    return out
