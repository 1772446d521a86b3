"""Regions at a distance: three regional dispatchers, us 75 ms and ap 120 ms round trip from eu
(user-space delaying relays in front of us and ap, tests/support/delay_relay.py). eu measures
them in that order, and what eu cannot start spills to the nearer, us."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.regions.test_region_peers import health, region_env, until
from tests.regions.test_spill_over import peer_view, start
from tests.support.delay_relay import delayed
from tests.support.ports import free_port
from tests.support.processes import run_dispatcher

ROUND_TRIPS = {"us": 0.075, "ap": 0.120}


@pytest.mark.slow
def test_spill_over_from_eu_picks_the_region_nearest_by_measured_round_trip(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("eu", "us", "ap")}
    with ExitStack() as stack:
        # Every region reaches us and ap through their relays, eu directly: REGIONS is one text everywhere.
        relayed = {name: stack.enter_context(delayed(ports[name], rtt)) for name, rtt in ROUND_TRIPS.items()}
        urls = {"eu": f"http://127.0.0.1:{ports['eu']}",
                **{name: f"http://127.0.0.1:{port}" for name, port in relayed.items()}}
        one_session = {"MAX_CONCURRENT_SESSIONS": "1"}
        running = {name: stack.enter_context(run_dispatcher(
            tmp_path, {**region_env(name, urls), **one_session}, port=ports[name], log_name=f"{name}.log"))
            for name in ("eu", "us", "ap")}
        eu = running["eu"]
        until(lambda: all(peer_view(eu, peer).get("reachable") for peer in ROUND_TRIPS), 15)
        until(lambda: all((peer_view(eu, peer).get("capacity") or {}).get("room") for peer in ROUND_TRIPS), 10)
        seen = health(eu)["regions"]
        us_ms, ap_ms = seen["us"]["round_trip_ms"], seen["ap"]["round_trip_ms"]
        # Order and bounds, not exact figures: the relays add at least their delay, contention more.
        assert 75 <= us_ms < ap_ms and ap_ms >= 120, seen
        assert us_ms < 120, seen  # us is nearer than ap's added delay alone
        first = start(eu)
        assert first.status_code == 201 and first.json()["region"] == "eu", first.text
        spilled = start(eu)
        assert spilled.status_code == 201, spilled.text
        assert spilled.json()["region"] == "us" and spilled.json()["spilled_from"] == "eu"
