"""Capacity that follows the sun: a quiet region keeps fewer warm bots while a busier neighbour
within the spill budget has spare ones; never below its floor; flaps do not thrash. And it holds
more while a busier neighbour in the budget is short (its starts outrun its creates)."""

from __future__ import annotations

import math

from dispatcher.reserve.demand import Demand
from dispatcher.reserve.neighbours import SETTLE_SECONDS, Lean, Neighbour, NeighbourCover, lean, lend, own_need
from dispatcher.reserve.planner import Fleet, PlannerSettings, Tiers, plan_fleet
from dispatcher.reserve.poisson import poisson_quantile
from dispatcher.reserve.policy import ReserveSettings, parse_schedule
from dispatcher.reserve.sizer import FleetSizer

NOW = 1795392000.0 + 3 * 3600
BUDGET, LEVEL = 0.1, 0.95
SETTINGS = ReserveSettings(min_idle=1, buffer=0.0, max_idle=500, cold_start_seconds=40.0)
HOT_ONLY = Tiers(frozen=False, resume_seconds=0.0, create_per_second=20.0)


def us(**changes: object) -> Neighbour:
    """A busy neighbour 75 ms away: 2 starts/s, 40 s to refill, 150 idle bots (its own need: 95)."""
    values: dict[str, object] = {"name": "us", "reachable": True, "round_trip_seconds": 0.075, "idle": 150,
                                 "rate": 2.0, "refill_seconds": 40.0}
    return Neighbour(**{**values, **changes})  # type: ignore[arg-type]


def loan(*neighbours: Neighbour, here: str = "eu", rate: float = 0.2) -> Lean:
    return lean(here, rate, neighbours, budget_seconds=BUDGET, level=LEVEL)


def target(the_lean: Lean, *, lead: float = 9.0, rate: float = 0.2,
           settings: ReserveSettings = SETTINGS, minute: int = 3 * 60) -> int:
    demand = Demand(lead, rate, rate)
    return plan_fleet(Fleet([], []), demand=demand, settings=settings, planner=PlannerSettings(), tiers=HOT_ONLY,
                      now=NOW, cold_start_seconds=40.0, resume_seconds=0.0, spare_launches=1000,
                      utc_minute=minute, lean=the_lean).ready_target


def test_a_quiet_region_with_a_busier_neighbour_in_budget_keeps_fewer() -> None:
    alone = target(Lean())
    assert alone == 14  # 9 expected starts over the lead, at 95 %
    assert own_need(us(), LEVEL) == poisson_quantile(80.0, LEVEL) == 95  # us holds more: it can lend
    covered = target(loan(us()))
    # Down to its floor: its own 0.2 starts/s over the neighbour's 40 s refill stay home.
    assert covered == math.ceil(0.2 * 40.0) == 8


def test_the_pair_keeps_the_pooled_stock_the_quiet_region_holding_what_the_neighbour_lacks() -> None:
    # A tie in demand (2 starts/s each; eu leans on us by name): us holds exactly its own need.
    pooled = poisson_quantile((2.0 + 2.0) * 40.0, LEVEL)
    alone = target(Lean(), lead=82.0, rate=2.0)
    kept = target(loan(us(idle=80, warming=15), rate=2.0), lead=82.0, rate=2.0)
    assert kept == pooled - 95  # what the pair needs beyond us's bots, idle or booting
    assert math.ceil(2.0 * 40.0) < kept < alone


def test_no_cover_from_a_neighbour_out_of_budget_unreachable_unmeasured_or_busy() -> None:
    alone = target(Lean())
    for neighbour in (us(round_trip_seconds=0.150), us(reachable=False), us(round_trip_seconds=None),
                      us(idle=94), us(refill_seconds=math.inf)):
        assert loan(neighbour) == Lean(), neighbour
        assert target(loan(neighbour)) == alone


def test_regions_never_lean_on_each_other() -> None:
    # The busier one leans on nobody quieter; on a tie, the name decides who leans.
    assert loan(us(rate=0.1), rate=0.2) == Lean()
    assert loan(us(rate=0.2), rate=0.2) != Lean()  # eu < us
    assert loan(us(rate=0.2, name="ap"), rate=0.2) == Lean()


def test_a_neighbours_bots_are_shared_among_the_regions_that_may_lean_on_it() -> None:
    ap = Neighbour("ap", True, 0.120, 0, 2.0, 40.0)  # quieter than us too, so it may lean on us
    shared = loan(us(idle=99, rate=2.1), ap, rate=2.0, here="eu")
    group = poisson_quantile((2.1 + 2.0 + 2.0) * 40.0, LEVEL)
    assert shared.keep == math.ceil((group - 99) / 2)  # by their rates: half each
    assert loan(us(idle=99, rate=2.1), ap, rate=1.0, here="eu").keep == math.ceil(
        (poisson_quantile((2.1 + 1.0 + 2.0) * 40.0, LEVEL) - 99) / 3)  # a third: half ap's rate


def test_the_floor_keeps_one_bot_and_every_open_schedule_window() -> None:
    quiet = target(loan(us()), lead=0.0, rate=0.0)
    assert quiet == 1  # RESERVE_MIN_IDLE=1: one stays home
    nothing = ReserveSettings(min_idle=0, buffer=0.0, max_idle=500)
    assert target(loan(us()), lead=0.0, rate=0.0, settings=nothing) == 0
    windowed = ReserveSettings(min_idle=1, buffer=0.0, max_idle=500, schedule=parse_schedule("02:00-04:00=6"))
    assert target(loan(us()), lead=0.0, rate=0.0, settings=windowed) == 6


def test_a_loss_of_cover_counts_at_once_a_gain_only_once_it_held() -> None:
    cover = NeighbourCover()
    assert cover.update(0.0, Lean(10, 40.0)).keep == math.inf
    assert cover.update(SETTLE_SECONDS / 2, Lean(13, 40.0)).keep == math.inf
    assert cover.update(SETTLE_SECONDS, Lean(8, 40.0)).keep == 13  # the most seen while it held
    assert cover.update(SETTLE_SECONDS + 1, Lean()).keep == math.inf  # the neighbour went: at once


def test_a_flapping_neighbour_never_lowers_the_target() -> None:
    cover = NeighbourCover()
    held = [cover.update(float(t), Lean(10, 40.0) if t % 2 else Lean()).keep for t in range(120)]
    assert held == [math.inf] * 120
    cover.update(120.0, Lean())
    steady = [cover.update(120.0 + t, Lean(10, 40.0)).keep for t in range(int(SETTLE_SECONDS) + 1)]
    assert steady[-1] == 10 and steady[:-1] == [math.inf] * int(SETTLE_SECONDS)


def test_the_sizer_lowers_its_target_while_the_neighbour_lends_and_recovers_when_it_is_gone() -> None:
    planner = PlannerSettings(forecast=False)
    sizer, twin = FleetSizer(SETTINGS, planner, HOT_ONLY), FleetSizer(SETTINGS, planner, HOT_ONLY)
    for n in range(200):  # 1 start/s for a while
        sizer.arrived(NOW - 200 + n)
        twin.arrived(NOW - 200 + n)

    def ready(t: float, *neighbours: Neighbour) -> tuple[int, int]:
        alone = twin.plan(NOW + t, Fleet([], []), 1000).ready_target
        return sizer.plan(NOW + t, Fleet([], []), 1000, region="eu", neighbours=neighbours).ready_target, alone

    held, alone = ready(0.5, us(rate=3.0, idle=200))
    assert held == alone  # not yet: a gain must hold first
    held, alone = ready(SETTLE_SECONDS + 1, us(rate=3.0, idle=200))
    floor = math.ceil(sizer.demand(NOW + SETTLE_SECONDS + 1).rate * 40.0)  # its starts over us's refill
    assert floor <= held < alone
    held, alone = ready(SETTLE_SECONDS + 2, us(reachable=False))
    assert held == alone


SHORT = {"rate": 27.0, "idle": 0, "warming": 800}


def held_for(*neighbours: Neighbour, here: str = "eu", rate: float = 0.2) -> int:
    return lend(here, rate, neighbours, budget_seconds=BUDGET, level=LEVEL)


def test_a_quiet_region_holds_a_short_busier_neighbours_shortfall() -> None:
    # A burst: us expects 27 starts/s over its 40 s refill, and its creates (20 a second) keep only
    # 800 booting: what it lacks spills, so eu holds it on top of its own stock.
    burst = us(**SHORT)
    lacking = own_need(burst, LEVEL) - 800
    assert lacking > (27.0 - 20.0) * 40.0  # more than its starts beyond its creates: its safety stock too
    assert held_for(burst) == lacking
    demand = Demand(9.0, 0.2, 0.2)

    def plan(lent: int) -> int:
        return plan_fleet(Fleet([], []), demand=demand, settings=SETTINGS, planner=PlannerSettings(), tiers=HOT_ONLY,
                          now=NOW, cold_start_seconds=40.0, resume_seconds=0.0, spare_launches=1000,
                          utc_minute=3 * 60, lend=lent).ready_target

    assert plan(held_for(burst)) == min(SETTINGS.max_idle, target(Lean()) + lacking)


def test_nothing_held_for_a_neighbour_that_is_not_short_out_of_budget_unreachable_or_quieter() -> None:
    assert held_for(us()) == 0  # 150 idle: more than its own need
    short = SHORT
    for neighbour in (us(**short, round_trip_seconds=0.150), us(**short, reachable=False),
                      us(**short, round_trip_seconds=None), us(**short, refill_seconds=math.inf)):
        assert held_for(neighbour) == 0, neighbour
    assert held_for(us(**short), rate=30.0) == 0  # eu is the busier one: us would hold for eu


def test_a_shortfall_is_shared_by_every_region_quieter_than_the_short_one() -> None:
    burst = us(**SHORT)
    ap = Neighbour("ap", True, 0.120, 50, 2.0, 40.0)
    lacking = own_need(burst, LEVEL) - 800
    assert held_for(burst, ap) == math.ceil(lacking / 2)
    assert held_for(burst, ap, here="eu", rate=3.0) == math.ceil(lacking / 2)


def test_the_sizer_holds_for_a_short_neighbour_at_once_and_lets_go_when_it_is_not() -> None:
    planner = PlannerSettings.from_env({"RESERVE_FORECAST": "0", "REGION_HOLD_FOR_NEIGHBOURS": "1"})
    sizer, twin = FleetSizer(SETTINGS, planner, HOT_ONLY), FleetSizer(SETTINGS, planner, HOT_ONLY)
    off = FleetSizer(SETTINGS, PlannerSettings(forecast=False), HOT_ONLY)  # the default: holds nothing
    for n in range(200):
        for one in (sizer, twin, off):
            one.arrived(NOW - 200 + n)
    burst = us(**SHORT)
    assert off.plan(NOW, Fleet([], []), 1000, region="eu", neighbours=[burst]).lent == 0
    held = sizer.plan(NOW, Fleet([], []), 1000, region="eu", neighbours=[burst])
    alone = twin.plan(NOW, Fleet([], []), 1000).ready_target
    assert held.lent == own_need(burst, LEVEL) - 800
    assert held.ready_target == min(SETTINGS.max_idle, alone + held.lent)
    assert sizer.plan(NOW + 1, Fleet([], []), 1000, region="eu", neighbours=[us()]).lent == 0
