"""Capacity that follows the sun, with real dispatchers: each region advertises its demand and
idle bots in `/regions/state`, and a quiet region's planner keeps fewer warm bots while a busier
neighbour within the spill budget advertises spare ones, and as many as alone once it is gone.
That a spilled start is the demand of the region it arrived at, not the lender's, is
test_spill_over.py's (its cold start spilled to a warm region), and a handed phone call's
test_phone_handoff_counts.py's."""

from __future__ import annotations

from pathlib import Path

import httpx

from dispatcher.reserve.neighbours import SETTLE_SECONDS
from tests.regions.support import ADMIN_KEY, regions, until
from tests.regions.test_spill_over import peer_view
from tests.support.processes import DispatcherProcess


def ready_target(process: DispatcherProcess, part: str) -> float | None:
    # The regions' own admin key: the one that also reads a peer's whole view at /healthz.
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    for line in httpx.get(f"{process.base_url}/metrics", headers=admin, timeout=5).text.splitlines():
        if line.startswith("voicefleet_reserve_ready_target{") and f'part="{part}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_a_quiet_region_keeps_fewer_warm_bots_while_its_neighbour_has_spare_ones(tmp_path: Path) -> None:
    three = {"RESERVE_MIN_IDLE": "3", "RESERVE_MAX_IDLE": "3"}
    with regions(tmp_path, ("eu", "us"), {"eu": three, "us": three}) as (_, running):
        eu, us = running["eu"], running["us"]
        # us advertises its idle bots across its replicas and its demand (none: it is quiet too, and
        # on a tie by name eu leans on us, never the other way).
        until(lambda: (peer_view(eu, "us").get("capacity") or {}).get("idle") == 3, 60)
        assert peer_view(eu, "us")["capacity"]["demand_per_minute"] == 0
        # Lowered only once the cover has held, to one bot kept home (RESERVE_MIN_IDLE asks for some).
        waited = until(lambda: ready_target(eu, "held") == 1, SETTLE_SECONDS + 60)
        assert ready_target(eu, "covered") == 2
        assert ready_target(us, "held") == 3 and ready_target(us, "covered") == 0
        assert waited >= SETTLE_SECONDS - 3  # not at the first answer (the bots took a while to be idle)
        us.process.kill()
        us.process.wait()
        until(lambda: ready_target(eu, "held") == 3, 60)  # the neighbour is unreachable: back at once
        assert ready_target(eu, "covered") == 0

