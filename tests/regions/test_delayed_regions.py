"""Regions at a distance, a link of its own per pair: eu–us 75 ms, eu–ap 200 ms, us–ap 350 ms round
trip (user-space delaying relays, tests/support/delay_relay.py: one in front of each region, the
delay chosen by which region dials). Each region measures its own peers in its own order (us sees
eu before ap, ap sees eu before us), and what eu cannot start spills to its nearer peer, us."""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.regions.support import health, region_env, until
from tests.regions.test_spill_over import peer_view, start
from tests.support.delay_relay import delayed
from tests.support.ports import free_port
from tests.support.processes import run_dispatcher

NAMES = ("eu", "us", "ap")
# Each region's two peers at least 125 ms apart: the relays run in the test's own process, whose
# pauses on a busy machine (a collection, a wait for a core) add to whatever poll is in flight, and
# one slow poll moves a running mean by 0.3 of its delay (dispatcher/regions/peers.py RTT_WEIGHT).
ROUND_TRIPS = {frozenset(("eu", "us")): 0.075, frozenset(("eu", "ap")): 0.200, frozenset(("us", "ap")): 0.350}


def round_trip(a: str, b: str) -> float:
    return ROUND_TRIPS[frozenset((a, b))]


@pytest.mark.slow
def test_each_region_orders_its_own_peers_by_its_own_distances_and_spills_to_the_nearest(tmp_path: Path) -> None:
    ports = {name: free_port() for name in NAMES}
    # relay in front of `name` → {the dialling dispatcher's pid: that pair's round trip}, filled once they run
    by_source: dict[str, dict[int, float]] = {name: {} for name in NAMES}
    with ExitStack() as stack:
        relayed = {name: stack.enter_context(delayed(ports[name], 0.0, by_source[name])) for name in NAMES}
        # One REGIONS text everywhere: every region is dialled through its relay.
        urls = {name: f"http://127.0.0.1:{port}" for name, port in relayed.items()}
        one_session = {"MAX_CONCURRENT_SESSIONS": "1"}
        running = {name: stack.enter_context(run_dispatcher(
            tmp_path, {**region_env(name, urls), **one_session}, port=ports[name], log_name=f"{name}.log"))
            for name in NAMES}
        for there in NAMES:
            for here in NAMES:
                if here != there:
                    by_source[there][running[here].process.pid] = round_trip(here, there)

        def measured(here: str) -> dict[str, float]:
            seen = health(running[here])["regions"]
            return {peer: seen[peer]["round_trip_ms"] for peer in seen}

        def settled(here: str) -> bool:
            """Every peer reachable and its mean past its link's delay (reads over a link made
            before the delays were known start near zero: the mean takes a few polls)."""
            seen = health(running[here])["regions"]
            return all(view.get("reachable") and (view.get("round_trip_ms") or 0) >= 1000 * round_trip(here, peer)
                       for peer, view in seen.items())

        until(lambda: all(settled(name) for name in NAMES), 60)
        # Order and lower bounds, not exact figures: the relays add at least their delay, and a
        # loaded host more, to every peer alike (a few reads averaged, so one slow poll decides nothing).
        reads = []
        for _ in range(5):
            time.sleep(0.5)
            reads.append({here: measured(here) for here in NAMES})
        mean = {here: {peer: sum(r[here][peer] for r in reads) / len(reads) for peer in reads[0][here]}
                for here in NAMES}
        eu, us, ap = mean["eu"], mean["us"], mean["ap"]
        assert 75 <= eu["us"] < eu["ap"] and eu["ap"] >= 200, eu
        assert 75 <= us["eu"] < us["ap"] and us["ap"] >= 350, us  # us sees eu before ap
        assert 200 <= ap["eu"] < ap["us"] and ap["us"] >= 350, ap  # ap sees eu before us

        until(lambda: all((peer_view(running["eu"], peer).get("capacity") or {}).get("room")
                          for peer in ("us", "ap")), 60)
        first = start(running["eu"])
        assert first.status_code == 201 and first.json()["region"] == "eu", first.text
        spilled = start(running["eu"])
        assert spilled.status_code == 201, spilled.text
        assert spilled.json()["region"] == "us" and spilled.json()["spilled_from"] == "eu"
