"""The fleet-wide planner: targets per tier, and what it launches, freezes, resumes and retires."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.reserve.demand import Demand
from dispatcher.reserve.planner import Fleet, FleetPlan, PlannerSettings, Tiers, plan_fleet
from dispatcher.reserve.policy import ReserveSettings, parse_schedule
from dispatcher.settings import SettingsError

NOW = 1795392000.0 + 12 * 3600  # noon UTC
SETTINGS = ReserveSettings(min_idle=0, buffer=0.0, max_idle=100, max_idle_seconds=900.0, scaledown_seconds=60.0)
HOT_ONLY = Tiers(frozen=False, resume_seconds=0.0, create_per_second=20.0)
FROZEN = Tiers(frozen=True, resume_seconds=0.4, create_per_second=1.0)
PLANNER = PlannerSettings()


def idle(*ages: float) -> list[float]:
    """Times bots became idle (or frozen), oldest first, from their ages now."""
    return sorted(NOW - age for age in ages)


def plan(fleet: Fleet, *, lead: float = 0.0, rate: float | None = None, base: float = 0.0,
         tiers: Tiers = HOT_ONLY, settings: ReserveSettings = SETTINGS, planner: PlannerSettings = PLANNER,
         spare: int = 1000, cold: float = 40.0) -> FleetPlan:
    demand = Demand(lead, lead / (cold + 1) if rate is None else rate, base)
    return plan_fleet(fleet, demand=demand, settings=settings, planner=planner, tiers=tiers, now=NOW,
                      cold_start_seconds=cold, resume_seconds=tiers.resume_seconds, spare_launches=spare,
                      utc_minute=12 * 60)


# --- the ready target -------------------------------------------------------------------


def test_the_ready_target_covers_a_cold_start_of_starts_at_the_service_level() -> None:
    # 2.1 expected starts during a cold start: 5 bots cover them 95 % of the time.
    result = plan(Fleet([], []), lead=2.1)
    assert (result.ready_target, result.launch) == (5, 5)


def test_bots_booting_count_toward_the_target() -> None:
    assert plan(Fleet(idle(10, 20), [], warming=3), lead=2.1).launch == 0


def test_the_static_floor_stays_under_the_forecast() -> None:
    settings = ReserveSettings(min_idle=4, buffer=0.0, max_idle=100)
    assert plan(Fleet([], []), lead=0.01, settings=settings).ready_target == 4


def test_a_schedule_window_is_an_override_the_forecast_cannot_lower() -> None:
    settings = ReserveSettings(min_idle=0, max_idle=100, schedule=parse_schedule("11:00-13:00=7"))
    assert plan(Fleet([], []), lead=0.0, settings=settings).ready_target == 7


def test_max_idle_caps_the_running_reserve() -> None:
    settings = ReserveSettings(min_idle=0, buffer=0.0, max_idle=6)
    result = plan(Fleet(idle(5, 6), [], warming=2), lead=250.0, settings=settings)
    assert result.ready_target == 6 and result.launch == 2


def test_launches_wait_for_the_create_limit() -> None:
    assert plan(Fleet([], []), lead=30.0, spare=2).launch == 2


def test_a_reserve_turned_off_retires_everything() -> None:
    settings = ReserveSettings(min_idle=0, max_idle=0)
    result = plan(Fleet(idle(5, 6), idle(100)), lead=5.0, settings=settings)
    assert (result.launch, result.retire_hot, result.retire_frozen) == (0, 2, 1)


# --- retirement ---------------------------------------------------------------------------


def test_an_idle_bot_past_its_age_is_retired_and_replaced() -> None:
    result = plan(Fleet(idle(901, 10), []), lead=0.4)  # target 2: one bot too old
    assert (result.retire_hot, result.launch) == (1, 1)


def test_a_bot_about_to_age_out_is_replaced_one_cold_start_early() -> None:
    result = plan(Fleet(idle(880, 10), []), lead=0.4, cold=40.0)
    assert (result.retire_hot, result.launch) == (0, 1)


def test_surplus_bots_go_only_once_idle_for_the_scaledown_time() -> None:
    assert plan(Fleet(idle(30, 20, 10), []), lead=0.0).retire_hot == 0
    assert plan(Fleet(idle(300, 200, 10), []), lead=0.0).retire_hot == 2


def test_surplus_is_not_retired_below_the_minimum_while_replacements_boot() -> None:
    # Target 5; 5 idle and 2 booting: 2 are surplus, but retiring both would leave 3 ready, under
    # RESERVE_MIN_IDLE, until the others land.
    settings = ReserveSettings(min_idle=4, buffer=0.0, max_idle=100, scaledown_seconds=60.0)
    result = plan(Fleet(idle(300, 300, 300, 300, 300), [], warming=2), lead=2.1, settings=settings)
    assert result.retire_hot == 1


# --- the frozen tier ----------------------------------------------------------------------


def test_with_a_frozen_tier_only_a_few_bots_run() -> None:
    result = plan(Fleet([], []), lead=2.1, rate=0.05, tiers=FROZEN, cold=3.0)
    assert result.hot_target == PLANNER.min_hot and result.ready_target == 5


def test_hot_bots_above_the_hot_target_are_frozen_while_the_frozen_tier_is_short() -> None:
    result = plan(Fleet(idle(5, 4, 3, 2, 1), []), lead=2.1, rate=0.05, tiers=FROZEN, cold=3.0)
    assert (result.freeze, result.retire_hot, result.launch) == (4, 0, 0)


def test_a_short_hot_tier_is_refilled_by_resuming_frozen_bots() -> None:
    result = plan(Fleet([], idle(100, 90, 80, 70, 60)), lead=2.1, rate=0.05, tiers=FROZEN, cold=3.0)
    assert (result.resume, result.launch) == (1, 0)


def test_more_starts_per_second_keep_more_bots_hot() -> None:
    calm = plan(Fleet([], []), lead=3.0, rate=0.5, tiers=FROZEN, cold=3.0)
    busy = plan(Fleet([], []), lead=60.0, rate=10.0, tiers=FROZEN, cold=3.0)
    assert busy.hot_target > calm.hot_target


def test_surplus_frozen_bots_go_only_well_above_the_target_and_after_their_scaledown() -> None:
    frozen_long = idle(*[4000.0] * 12)
    assert plan(Fleet(idle(1), frozen_long), lead=2.1, tiers=FROZEN, cold=3.0).retire_frozen == 12 - 4 - 1
    frozen_recently = idle(*[60.0] * 12)
    assert plan(Fleet(idle(1), frozen_recently), lead=2.1, tiers=FROZEN, cold=3.0).retire_frozen == 0


def test_frozen_bots_past_their_age_are_retired() -> None:
    result = plan(Fleet(idle(1), idle(90_000, 10, 10, 10)), lead=2.1, tiers=FROZEN, cold=3.0)
    assert result.retire_frozen == 1 and result.launch == 1


def test_a_provider_without_a_frozen_tier_never_freezes() -> None:
    result = plan(Fleet(idle(300, 300, 300, 300, 300, 300), idle(10)), lead=0.4)
    assert result.freeze == 0 and result.resume == 0 and result.retire_frozen == 1


# --- the surge stock ----------------------------------------------------------------------


def test_a_burst_faster_than_the_creates_is_stocked_ahead() -> None:
    planner = PlannerSettings(surge_factor=5.0, surge_seconds=600.0)
    # Base 0.3/s, bursts at 1.5/s, one create a second: 0.5/s short for 600 s = 300 bots.
    result = plan(Fleet([], []), lead=1.0, base=0.3, tiers=FROZEN, planner=planner, cold=3.0)
    assert result.ready_target == 300 + 3


def test_creates_faster_than_any_burst_need_no_surge_stock() -> None:
    planner = PlannerSettings(surge_factor=5.0, surge_seconds=600.0)
    assert plan(Fleet([], []), lead=1.0, base=0.3, planner=planner).ready_target == 3


@given(st.lists(st.floats(0.0, 2000.0), max_size=30), st.lists(st.floats(0.0, 100_000.0), max_size=30),
       st.integers(0, 20), st.integers(0, 5), st.integers(0, 5), st.floats(0.0, 300.0), st.booleans(),
       st.integers(0, 50))
def test_a_plan_never_acts_on_more_bots_than_there_are(
    hot_ages: list[float], frozen_ages: list[float], warming: int, freezing: int, resuming: int,
    lead: float, frozen: bool, spare: int,
) -> None:
    tiers = FROZEN if frozen else HOT_ONLY
    fleet = Fleet(idle(*hot_ages), idle(*frozen_ages), warming=warming, freezing=freezing, resuming=resuming)
    result = plan(fleet, lead=lead, tiers=tiers, spare=spare)
    assert min(result.launch, result.retire_hot, result.freeze, result.retire_frozen, result.resume) >= 0
    assert result.retire_hot + result.freeze <= len(hot_ages)
    assert result.retire_frozen + result.resume <= len(frozen_ages)
    assert result.launch <= spare
    running_after = len(hot_ages) - result.retire_hot + warming + resuming + freezing + result.launch
    assert result.launch == 0 or running_after <= SETTINGS.max_idle


# --- settings -----------------------------------------------------------------------------


def test_settings_come_from_the_environment() -> None:
    planner = PlannerSettings.from_env({"RESERVE_SERVICE_LEVEL": "0.99", "RESERVE_FORECAST": "0",
                                        "RESERVE_SURGE_SECONDS": "1200", "RESERVE_MAX_FROZEN": "50"})
    assert (planner.service_level, planner.forecast, planner.surge_seconds, planner.max_frozen) == (0.99, False,
                                                                                                   1200.0, 50)


@pytest.mark.parametrize("env", [{"RESERVE_SERVICE_LEVEL": "1"}, {"RESERVE_SERVICE_LEVEL": "0.2"},
                                 {"RESERVE_FORECAST": "maybe"}, {"RESERVE_SURGE_FACTOR": "0.5"},
                                 {"RESERVE_MIN_HOT": "-1"}])
def test_bad_settings_are_refused_with_the_variable_named(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=next(iter(env))):
        PlannerSettings.from_env(env)


def test_a_bot_likely_claimed_before_a_freeze_round_trip_stays_hot() -> None:
    slow_freeze = Tiers(frozen=True, resume_seconds=0.4, create_per_second=1.0, suspend_seconds=5.0)
    # 1 start a second: a bot frozen now would be wanted again before it is suspended and back.
    busy = plan(Fleet(idle(5, 4, 3, 2, 1), []), lead=7.0, rate=1.0, tiers=slow_freeze, cold=3.0)
    quick = plan(Fleet(idle(5, 4, 3, 2, 1), []), lead=7.0, rate=1.0, tiers=FROZEN, cold=3.0)
    assert busy.freeze < quick.freeze
    assert busy.hot_target >= 5
