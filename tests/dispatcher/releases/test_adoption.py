"""What a region keeps of a traffic record another region made: never more than an admin here may
do (no traffic to a release whose smoke has not passed here, bar that smoke's own verdict), never
the other region's list of releases, and an audit line naming the region it came from."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from dispatcher.errors import ApiError
from dispatcher.releases.catalogue import Catalogue, Release
from dispatcher.releases.live import LiveReleases
from dispatcher.releases.traffic import Traffic
from dispatcher.store.release_book import MemoryReleaseBook

ADMIN = "admin-0a1b2c3d4e5f"


def region(name: str) -> LiveReleases:
    """`stable` serving, `next` listed and waiting for its smoke session. `us` reads its first record
    a minute before `eu` changes anything, so every change made at `eu` is newer."""
    lag = 60.0 if name == "us" else 0.0
    catalogue = Catalogue((Release("stable", {"*": "img-1"}), Release("next", {"*": "img-2"})), canary_percent=10)
    return LiveReleases(catalogue, MemoryReleaseBook(), region=name, clock=lambda: time.time() - lag)


def made_at_eu(traffic: Traffic, **fields: object) -> Traffic:
    return replace(traffic, version=(int(time.time() * 1000), "eu"), changed_by=ADMIN, **fields)  # type: ignore[arg-type]


async def test_a_record_giving_traffic_to_a_release_not_smoke_tested_here_is_refused() -> None:
    us = region("us")
    before = await us.refresh()
    forged = made_at_eu(before, weights={"stable": 0, "next": 100}, smoke={}, reason="next promoted")
    with pytest.raises(ApiError) as refused:
        await us.adopt(forged.to_json(), sender="eu")
    assert refused.value.status == 409 and refused.value.code == "release_not_smoke_tested"
    assert "voicefleet releases smoke next" in refused.value.message
    assert (await us.refresh()).weights == before.weights == {"stable": 100, "next": 0}
    assert us.traffic.smoke_of("next").status == "pending"


async def test_a_record_taking_traffic_from_an_untested_release_is_kept() -> None:
    us = region("us")
    before = await us.refresh()
    assert await us.adopt(made_at_eu(before, reason="nothing moved but who").to_json(), sender="eu")


async def test_the_verdict_of_the_smoke_session_running_here_gives_the_release_its_canary() -> None:
    eu, us = region("eu"), region("us")
    await eu.refresh()
    await us.refresh()
    running = await eu.change(lambda t, v: t.smoke_started("next", "s-eu-1", time.time(), 120.0, ADMIN, v))
    assert await us.adopt(running.to_json(), sender="eu")
    passed = await eu.change(lambda t, v: t.smoke_ended("next", "s-eu-1", None, time.time(), v))
    assert passed.weights["next"] > 0
    assert await us.adopt(passed.to_json(), sender="eu")
    assert us.traffic.weights == passed.weights and us.traffic.smoke_of("next").passed


@pytest.mark.parametrize("session", ["s-other", None])
async def test_a_passed_verdict_of_another_session_than_the_one_running_here_is_refused(
        session: str | None) -> None:
    eu, us = region("eu"), region("us")
    await eu.refresh()
    await us.refresh()
    running = await eu.change(lambda t, v: t.smoke_started("next", "s-eu-1", time.time(), 120.0, ADMIN, v))
    assert await us.adopt(running.to_json(), sender="eu")
    passed = (await eu.change(lambda t, v: t.smoke_ended("next", "s-eu-1", None, time.time(), v))).to_json()
    if session is None:
        del passed["smoke"]["next"]  # no entry counts as passed: the gate reads this region's record
    else:
        passed["smoke"]["next"]["session_id"] = session
    with pytest.raises(ApiError, match="smoke session s-eu-1 is running"):
        await us.adopt(passed, sender="eu")
    assert us.traffic.weights == running.weights


async def test_the_list_and_generation_stay_this_regions_so_its_own_list_is_fitted_again() -> None:
    us = region("us")
    before = await us.refresh()
    forged = made_at_eu(before, weights={"stable": 90, "v9": 10}, listed=("stable", "v9"),
                        generation="9999-12-31T23:59:59Z", smoke={})
    assert await us.adopt(forged.to_json(), sender="eu")
    assert (us.traffic.listed, us.traffic.generation) == (before.listed, before.generation)
    fitted = await us.refresh()  # the next reading, as every replica's each second
    assert dict(fitted.weights) == {"stable": 100, "next": 0} and fitted.smoke_of("next").status == "pending"


async def test_this_regions_audit_line_names_the_region_it_came_from_and_who_there() -> None:
    us = region("us")
    before = await us.refresh()
    made = made_at_eu(before, reason="stable promoted")
    assert await us.adopt(made.to_json(), sender="eu")
    line = (await us.history(1))[0]
    assert line["by"] == f"region eu: {ADMIN}" and line["region"] == "eu" and line["reason"] == "stable promoted"
    assert us.traffic.changed_by == ADMIN  # the record keeps its maker (it travels on as made)
