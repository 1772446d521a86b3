"""The sizing brain as the lease holder runs it: it learns, plans, and hands its state over."""

from __future__ import annotations

import json

import pytest

from dispatcher.reserve.forecast import BUCKET_SECONDS, DAY_SECONDS
from dispatcher.reserve.planner import Fleet, PlannerSettings, Tiers
from dispatcher.reserve.policy import ReserveSettings
from dispatcher.reserve.sizer import FleetSizer

MONDAY = 1795392000.0
SETTINGS = ReserveSettings(min_idle=1, buffer=0.0, max_idle=200, cold_start_seconds=40.0)
TIERS = Tiers(frozen=False, resume_seconds=0.0, create_per_second=20.0)
EMPTY = Fleet([], [])


def sizer() -> FleetSizer:
    return FleetSizer(SETTINGS, PlannerSettings(), TIERS)


def live_days(brain: FleetSizer, days: int, per_bucket: dict[int, int]) -> float:
    """Runs the brain through `days` days, ticking once a second, with `per_bucket[b]` starts in
    bucket b of each day (b counts from midnight); returns the time it stopped."""
    t = MONDAY
    for _ in range(days):
        for b in range(int(DAY_SECONDS // BUCKET_SECONDS)):
            n = per_bucket.get(b, 0)
            arrivals = [t + (i + 0.5) * BUCKET_SECONDS / n for i in range(n)]
            for s in range(int(BUCKET_SECONDS)):
                while arrivals and arrivals[0] <= t + s:
                    brain.arrived(arrivals.pop(0))
                if s % 30 == 0:  # a tick every 30 s is enough to watch every bucket
                    brain.plan(t + s, EMPTY, 0)
            t += BUCKET_SECONDS
    return t


BUSY = {b: 300 for b in range(36, 40)}  # 09:00-10:00 UTC: 300 starts per 15 min, nothing else


@pytest.fixture(scope="module")
def trained() -> tuple[FleetSizer, float]:
    brain = sizer()
    return brain, live_days(brain, 2, BUSY)


def test_it_learns_the_busy_hour_from_the_starts_it_saw(trained: tuple[FleetSizer, float]) -> None:
    brain, end = trained
    assert brain.forecast.rate(end + 9.5 * 3600) == pytest.approx(300 / BUCKET_SECONDS)


def test_it_raises_the_reserve_a_cold_start_before_the_busy_hour(trained: tuple[FleetSizer, float]) -> None:
    brain, end = trained
    brain = FleetSizer.from_dict(json.loads(json.dumps(brain.to_dict())), SETTINGS, PlannerSettings(), TIERS)
    early = brain.plan(end + 9 * 3600 - 300, EMPTY, 1000)
    ahead = brain.plan(end + 9 * 3600 - 20, EMPTY, 1000)
    assert early.ready_target == SETTINGS.min_idle
    assert ahead.ready_target >= 5  # half of a 40 s cold start lies in a bucket of 300 starts


def test_without_the_forecast_it_waits_for_the_starts(trained: tuple[FleetSizer, float]) -> None:
    brain, end = trained
    state = json.loads(json.dumps(brain.to_dict()))
    blind = FleetSizer.from_dict(state, SETTINGS, PlannerSettings(forecast=False), TIERS)
    assert blind.plan(end + 9 * 3600 - 20, EMPTY, 1000).ready_target == SETTINGS.min_idle


def test_a_new_lease_holder_plans_as_the_old_one_would_have() -> None:
    brain = sizer()
    end = live_days(brain, 1, BUSY)
    for i in range(12):
        brain.arrived(end + 9 * 3600 + i)
    brain.cold.observe(55.0)
    heir = FleetSizer.from_dict(json.loads(json.dumps(brain.to_dict())), SETTINGS, PlannerSettings(), TIERS)
    now = end + 9 * 3600 + 15
    assert heir.cold.mean == brain.cold.mean and heir.cold.quote() == brain.cold.quote()
    assert heir.plan(now, Fleet([now - 5], []), 100) == brain.plan(now, Fleet([now - 5], []), 100)


def test_its_state_is_small_enough_for_the_store() -> None:
    brain = sizer()
    live_days(brain, 1, BUSY)
    assert len(json.dumps(brain.to_dict())) < 20_000


@pytest.mark.parametrize("damage", [{"version": 0}, {"forecast": []}, {"last_starts": ["x"]},
                                    {"cold_start": [0, 1]}, {"resume": "fast"}])
def test_a_damaged_state_is_refused(damage: dict[str, object]) -> None:
    state = {**sizer().to_dict(), **damage}
    with pytest.raises(ValueError, match="state"):
        FleetSizer.from_dict(state, SETTINGS, PlannerSettings(), TIERS)


def test_a_cold_start_is_told_its_turn_for_a_create_and_a_cold_start_it_will_likely_beat() -> None:
    brain = sizer()
    assert brain.cold_quote(2.0) == pytest.approx(2.0 + brain.cold.quote(0.9))
    assert brain.cold.quote(0.9) > SETTINGS.cold_start_seconds


def test_a_plan_woken_within_a_tick_sizes_with_the_demand_the_tick_read() -> None:
    """A claim wakes the planner just after its arrival, where the recent rate reads high; the
    demand is read once a tick, so a burst raises the target at the next tick, not at each claim."""
    brain = sizer()
    for i in range(10):
        brain.arrived(MONDAY + 10.0 * i)  # one start every 10 s
    quiet = brain.plan(MONDAY + 95.0, EMPTY, 1000)
    for i in range(10):
        brain.arrived(MONDAY + 95.1 + 0.01 * i)  # a burst: ten starts in 0.1 s
    woken = brain.plan(MONDAY + 95.2, EMPTY, 1000)
    ticked = brain.plan(MONDAY + 96.0, EMPTY, 1000)
    assert woken.ready_target == quiet.ready_target < ticked.ready_target


def test_a_wall_clock_stepped_back_does_not_freeze_the_demand_the_plans_size_with() -> None:
    """The sizer's clock is the wall clock, which NTP may step back: the tick after the step reads
    the demand again, rather than reusing a quiet read until the clock is back where it was."""
    brain = sizer()
    quiet = brain.plan(MONDAY + 3600.0, EMPTY, 1000)
    for i in range(20):
        brain.arrived(MONDAY + 0.01 * i)  # the clock stepped back an hour: a burst of twenty starts
    stepped = brain.plan(MONDAY + 1.0, EMPTY, 1000)  # the next tick, on the stepped clock
    assert stepped.ready_target > quiet.ready_target


def test_the_starts_before_a_step_back_of_the_wall_clock_read_as_no_surge() -> None:
    """Starts recorded before NTP stepped the clock back lie in its future: read as recent, the
    last ten over a time 'since the oldest' below zero were ten starts a second, and the reserve
    was sized to its ceiling until the clock caught up an hour later."""
    brain = sizer()
    for i in range(10):
        brain.arrived(MONDAY + 3600.0 + 10.0 * i)  # one start every 10 s
    before = brain.plan(MONDAY + 3695.0, EMPTY, 1000)
    rate, base = brain.last_demand.rate, brain.last_demand.base_rate  # type: ignore[union-attr]
    stepped = brain.plan(MONDAY + 96.0, EMPTY, 1000)  # the clock stepped back an hour
    assert stepped.ready_target <= before.ready_target
    assert brain.last_demand.rate < 1.5 * rate and brain.last_demand.base_rate < 1.5 * base  # type: ignore[union-attr]


def test_a_replica_that_does_not_plan_advertises_the_holders_demand_however_long_ago_it_loaded_it() -> None:
    holder = sizer()
    for i in range(20):
        holder.arrived(MONDAY + i)  # a start a second
    holder.plan(MONDAY + 20.0, EMPTY, 1000)
    copy = FleetSizer.from_dict(json.loads(json.dumps(holder.to_dict())), SETTINGS, PlannerSettings(), TIERS)
    later = MONDAY + 60.0  # loaded up to a save and a reload ago: no start given to it since
    assert copy.advertised_demand(later, planning=False).rate == holder.demand(MONDAY + 20.0).rate
    assert copy.demand(later).rate < holder.demand(MONDAY + 20.0).rate / 3  # read now, it would fall
    assert holder.advertised_demand(later, planning=True).rate == holder.demand(later).rate
