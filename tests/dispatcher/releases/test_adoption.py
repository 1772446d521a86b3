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
from dispatcher.releases.smoke import Smoke
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
    assert await us.adopt(passed.to_json(), sender="eu", from_its_maker=True)  # read from eu's state answer
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
        await us.adopt(passed, sender="eu", from_its_maker=True)
    assert us.traffic.weights == running.weights


async def test_the_list_and_generation_stay_this_regions_so_its_own_list_is_fitted_again() -> None:
    us = region("us")
    before = await us.refresh()
    forged = made_at_eu(before, weights={"stable": 100, "v9": 0}, listed=("stable", "v9"),
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


async def test_a_record_marking_passed_a_smoke_that_never_ran_here_is_refused_so_no_later_one_raises_it() -> None:
    """Two pushes: the first moves no weight but says `next` passed (or drops its entry, which counts
    as passed); were it kept, the second's raise would find the gate open."""
    us = region("us")
    before = await us.refresh()
    for smoke in ({}, {"next": {"status": "passed", "session_id": "s-forged", "reason": "", "at": 1.0}}):
        forged = made_at_eu(before, reason="nothing moved").to_json()
        forged["smoke"] = smoke
        with pytest.raises(ApiError) as refused:
            await us.adopt(forged, sender="eu")
        assert refused.value.code == "release_not_smoke_tested" and "next" in refused.value.message
    assert us.traffic.smoke_of("next").status == "pending"
    raised = made_at_eu(us.traffic, weights={"stable": 0, "next": 100}, reason="next promoted")
    with pytest.raises(ApiError):
        await us.adopt(raised.to_json(), sender="eu")
    assert (await us.refresh()).weights == {"stable": 100, "next": 0}


async def test_a_record_giving_traffic_to_a_release_this_region_does_not_list_is_refused() -> None:
    """Unlisted here, `ghost` has no smoke state here (which would read as passed), and the next
    fitting, dropping it, would make the untested `next` the stable release with all the traffic."""
    us = region("us")
    before = await us.refresh()
    forged = made_at_eu(before, weights={"ghost": 100, "next": 0}, stable="ghost", smoke={"next": before.smoke["next"]})
    with pytest.raises(ApiError) as refused:
        await us.adopt(forged.to_json(), sender="eu")
    assert refused.value.code == "unknown_release" and "ghost" in refused.value.message
    fitted = await us.refresh()
    assert fitted.weights == {"stable": 100, "next": 0} and fitted.stable == "stable"


async def test_a_record_making_a_release_unlisted_here_the_one_a_rollback_returns_to_is_refused() -> None:
    """A stable release this region lacks: a rollback here would send every start to its newest release."""
    us = region("us")
    before = await us.refresh()
    forged = made_at_eu(before, weights={"ghost": 0, "stable": 100, "next": 0}, stable="ghost", reason="moved")
    with pytest.raises(ApiError) as refused:
        await us.adopt(forged.to_json(), sender="eu")
    assert refused.value.code == "unknown_release" and "ghost" in refused.value.message
    assert us.traffic.stable == "stable"


async def test_a_release_a_peers_record_dropped_still_waits_for_its_smoke_before_this_region_reads_again() -> None:
    us = region("us")
    before = await us.refresh()
    dropped = made_at_eu(before, weights={"stable": 100}, smoke={}, reason="next no longer listed")
    assert await us.adopt(dropped.to_json(), sender="eu")
    marked = replace(made_at_eu(before, reason="nothing moved", smoke={}),  # `next` again, no entry: passed
                     version=(dropped.version[0] + 1, "eu"))
    with pytest.raises(ApiError, match="next has not passed"):
        await us.adopt(marked.to_json(), sender="eu")
    assert (await us.refresh()).smoke_of("next").status == "pending"


async def test_a_smoke_verdict_pushed_is_refused_so_a_forged_running_session_and_its_verdict_open_nothing() -> None:
    """Whoever holds REGION_SECRET may push as eu: first a smoke session `running` (no weight
    moves), then that session's `passed`. Only eu's own state answer, read at its address, gives it."""
    us = region("us")
    before = await us.refresh()
    at = int(time.time() * 1000)
    forged = Smoke("running", "s-forged", "", time.time(), 10)
    running = replace(made_at_eu(before, smoke={"next": forged}), version=(at, "eu"))
    assert await us.adopt(running.to_json(), sender="eu")
    verdict = replace(running, version=(at + 1, "eu"), weights={"stable": 90, "next": 10},
                      smoke={"next": replace(forged, status="passed")})
    with pytest.raises(ApiError) as refused:
        await us.adopt(verdict.to_json(), sender="eu")
    assert refused.value.status == 409 and refused.value.code == "smoke_verdict_not_pushed"
    assert "region eu" in refused.value.message
    assert us.traffic.weights == {"stable": 100, "next": 0} and not us.traffic.smoke_of("next").passed


async def test_the_audit_line_of_a_record_with_control_characters_shows_them_escaped() -> None:
    """A carriage return or a terminal's escape in `changed_by` would rewrite, on the operator's
    screen, the `region eu:` before it; a newline would print a line of its own."""
    us = region("us")
    before = await us.refresh()
    made = replace(made_at_eu(before, reason="stable promoted\nby admin-x"),
                   changed_by="admin-0a1b\r\x1b[2Kadmin-ffffffffffff")
    assert await us.adopt(made.to_json(), sender="eu")
    line = (await us.history(1))[0]
    assert line["by"] == "region eu: admin-0a1b\\r\\x1b[2Kadmin-ffffffffffff"
    assert line["reason"] == "stable promoted\\nby admin-x"
    assert us.traffic.changed_by.isprintable() and us.traffic.reason.isprintable()
