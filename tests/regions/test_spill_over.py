"""A start a region cannot serve warm goes to a region that can: at its session cap, or with no
warm bot and a cold start past the caller's patience; said in the answer and the timeline; counted
in the demand of the region it arrived at, not the lender's; never when the caller pinned its
region; 429 only when no region has room."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.dispatcher.conftest import API_KEY
from tests.regions.support import health, regions, until
from tests.support.processes import DispatcherProcess

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def start(process: DispatcherProcess, **request: object) -> httpx.Response:
    return httpx.post(f"{process.base_url}/start", json={"body": {}, **request}, headers=AUTH, timeout=30)


def peer_view(process: DispatcherProcess, peer: str) -> dict:
    """What `process` last read of `peer` (its /healthz)."""
    return health(process).get("regions", {}).get(peer, {})


def test_a_start_spills_past_the_callers_patience_and_at_the_cap_says_so_and_counts_where_it_arrived(
        tmp_path: Path) -> None:
    """One pair: eu with room for two but no warm bot and a 20 s cold start, us with two places and
    a warm bot. A hurried start spills for its patience, then eu's own starts fill it and the next
    spills for the cap, until no region has room."""
    cold_here = {"RESERVE_MAX_IDLE": "0", "RESERVE_COLD_START_SECONDS": "20", "MAX_CONCURRENT_SESSIONS": "2"}
    warm_there = {"RESERVE_MAX_IDLE": "2", "RESERVE_MIN_IDLE": "1", "MAX_CONCURRENT_SESSIONS": "2"}
    with regions(tmp_path, ("eu", "us"), {"eu": cold_here, "us": warm_there}) as (_, running):
        eu, us = running["eu"], running["us"]
        until(lambda: (peer_view(eu, "us").get("capacity") or {}).get("warm", {}).get("webrtc"), 60)
        hurried = start(eu, maxWaitSeconds=5)
        assert hurried.status_code == 201, hurried.text
        assert hurried.json()["region"] == "us" and hurried.json()["spilled_from"] == "eu"
        # The spilled start is the demand of the region it arrived at (what eu advertises, its planner's
        # rate sample), not the lender's: us only lent its bot.
        until(lambda: (peer_view(us, "eu").get("capacity") or {}).get("demand_per_minute", 0) > 0, 60)
        assert peer_view(eu, "us")["capacity"]["demand_per_minute"] == 0
        assert start(eu, maxWaitSeconds=5, region="eu").status_code == 503  # pinned: never spilled
        patient = start(eu)  # no patience given: it waits cold here
        assert patient.status_code == 201 and patient.json()["region"] == "eu"

        second = start(eu)  # eu's last place
        assert second.status_code == 201 and second.json()["region"] == "eu", second.text
        spilled = start(eu)
        assert spilled.status_code == 201, spilled.text
        assert spilled.json()["region"] == "us" and spilled.json()["spilled_from"] == "eu"
        timeline = httpx.get(f"{eu.base_url}/sessions/{spilled.json()['session_id']}/timeline",
                             headers=AUTH, timeout=10).json()
        events = timeline["events"] if isinstance(timeline, dict) else timeline
        assert any(e.get("event") == "spilled" and e.get("from_region") == "eu"
                   and e.get("reason") == "at_capacity" for e in events), events
        pinned = start(eu, region="eu")  # pinned: refused here, never spilled
        assert pinned.status_code == 429
        until(lambda: (peer_view(eu, "us").get("capacity") or {}).get("room") == 0, 60)
        full = start(eu)  # no region has room
        assert full.status_code == 429 and full.json()["error"]["code"] == "at_capacity"
