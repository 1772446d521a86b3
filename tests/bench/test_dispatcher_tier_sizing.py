"""The dispatcher tier bench's arithmetic (bench/dispatcher_tier_sizing.py): what a peak needs from
what was measured, and the helpers its fill leans on (a copy's renaming, the fast fakes' indexes)."""

from __future__ import annotations

import re

import pytest

from bench.dispatcher_tier_fill import renamed
from bench.dispatcher_tier_sizing import (
    STORE_MEMORY_FACTOR,
    Measured,
    needs,
    replica_cores,
    sessions_kept,
)
from bench.fast_fakes import _FLY, Fleet

MEASURED = Measured(starts_per_core=70.0, store_ops_per_start=80.0, store_cpu_ms_per_start=1.5,
                    store_bytes_per_session=3000.0, replica_rss_bytes_per_session=10_000.0)


def test_replica_cores_carry_the_rate_at_half_their_measured_rate() -> None:
    assert replica_cores(420, 70) == 12  # 420 / 35 exactly
    assert replica_cores(421, 70) == 13  # a start over is a core more
    assert replica_cores(420, 70, utilisation=1.0) == 6
    assert replica_cores(1, 1000) == 1


@pytest.mark.parametrize(("rate", "utilisation"), [(0.0, 0.5), (-3.0, 0.5), (70.0, 0.0), (70.0, 1.5)])
def test_replica_cores_refuse_a_rate_or_utilisation_that_means_nothing(rate: float, utilisation: float) -> None:
    with pytest.raises(ValueError, match="positive measured rate"):
        replica_cores(420, rate, utilisation)


def test_the_store_keeps_every_session_started_in_the_kept_day_at_least_the_live_ones() -> None:
    assert sessions_kept(420, 0, 100_000) == 100_000
    assert sessions_kept(420, 1, 100_000) == 1_512_000
    assert sessions_kept(420, 48, 100_000) == 420 * 24 * 3600  # a day is all that is kept


def test_what_the_peak_needs() -> None:
    peak = needs(MEASURED, starts_per_second=420, live_sessions=100_000, hours_at_peak=0)
    assert peak.replica_cores == 12
    assert peak.store_ops_per_second == 420 * 80
    assert peak.store_thread_share == pytest.approx(0.63)  # 420 × 1.5 ms
    assert not peak.store_holds  # past half its one thread
    assert peak.store_data_bytes == 3000 * 100_000
    assert peak.store_memory_bytes == 3000 * 100_000 * STORE_MEMORY_FACTOR
    assert peak.replica_rss_bytes == pytest.approx(10_000 * 100_000 / 12)


def test_a_store_under_half_its_thread_holds() -> None:
    assert needs(MEASURED, starts_per_second=300).store_holds  # 0.45 of a core


def test_a_copy_renames_the_session_wherever_it_appears() -> None:
    original, new = "1fedcf90095e7e465f418835", "0123456789abcdef01234567"
    event = {"event": "requested", "session_id": original, "detail": {f"vf-{original}": [f"room-{original}"]}}
    assert renamed(event, original, new) == {"event": "requested", "session_id": new,
                                             "detail": {f"vf-{new}": [f"room-{new}"]}}


def _fly(fleet: Fleet, method: str, path: str, query: dict[str, str], body: object = None) -> tuple[int, object]:
    match = _FLY.match(path)
    assert match is not None
    return fleet.fly_call(method, match, query, body)


def test_the_fast_fakes_list_by_metadata_and_refuse_a_taken_name_as_fly_does() -> None:
    fleet = Fleet(latency=0)
    for n in range(3):
        status, _ = _fly(fleet, "POST", "/v1/apps/a/machines", {},
                         {"name": f"vf-{n}", "config": {"metadata": {"voicefleet_session": f"s{n}"}}})
        assert status == 200
    status, listed = _fly(fleet, "GET", "/v1/apps/a/machines", {"metadata.voicefleet_session": "s1"})
    assert status == 200 and isinstance(listed, list)
    assert [m["name"] for m in listed] == ["vf-1"]
    assert _fly(fleet, "GET", "/v1/apps/a/machines", {"metadata.voicefleet_session": "s9"}) == (200, [])
    assert fleet.fly_whole_lists == 0  # looked up by session: not a list of every machine
    status, _ = _fly(fleet, "GET", "/v1/apps/a/machines", {})
    assert status == 200 and fleet.fly_whole_lists == 1
    status, refused = _fly(fleet, "POST", "/v1/apps/a/machines", {}, {"name": "vf-2", "config": {}})
    assert status == 409 and re.search("already_exists", str(refused))


def test_the_fast_fakes_make_many_machines_at_once_as_each_create_would() -> None:
    fleet = Fleet(latency=0)
    bodies = [{"name": f"vf-{n}", "config": {"metadata": {"voicefleet_session": f"s{n}"}}} for n in range(3)]
    status, made = fleet.fly_create_many(bodies)
    assert status == 200 and isinstance(made, dict) and len(made["ids"]) == 3
    status, listed = _fly(fleet, "GET", "/v1/apps/a/machines", {"metadata.voicefleet_session": "s2"})
    assert status == 200 and isinstance(listed, list)
    assert [(m["id"], m["name"], m["state"]) for m in listed] == [(made["ids"][2], "vf-2", "started")]
    status, refused = fleet.fly_create_many([{"name": "vf-3", "config": {}}, {"name": "vf-1", "config": {}}])
    assert status == 409 and re.search("already_exists: vf-1", str(refused))
    assert fleet.fly_create_many({"name": "vf-9"})[0] == 400  # one body, not a list
    assert not fleet.calls  # a fill's machines are not the dispatcher's calls
