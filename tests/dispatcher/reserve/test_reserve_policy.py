"""The sizing policy: floor, buffer, pipeline (burst) term, cap, schedule, and its settings."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from dispatcher.reserve.policy import (
    DEFAULT_COLD_START_SECONDS,
    ReserveSettings,
    ReserveSize,
    ScheduleWindow,
    idle_floor,
    parse_schedule,
    reserve_size,
    utc_minute_of,
)
from dispatcher.settings import SettingsError

NOON = 12 * 60


def size(
    settings: ReserveSettings, *, active: int = 0, rate: float = 0.0, cold: float = 40.0, minute: int = NOON
) -> ReserveSize:
    return reserve_size(settings, active=active, arrivals_per_second=rate, cold_start_seconds=cold, utc_minute=minute)


def test_with_no_traffic_the_reserve_holds_the_minimum() -> None:
    assert size(ReserveSettings(min_idle=2, buffer=0.5, max_idle=10)) == ReserveSize(ready=2, total=2)


def test_the_buffer_is_a_fraction_of_active_sessions_rounded_up() -> None:
    assert size(ReserveSettings(min_idle=1, buffer=0.25, max_idle=50), active=13).ready == 4


def test_a_buffer_that_comes_out_whole_is_not_rounded_up_by_float_error() -> None:
    # 0.55 × 100 is 55.00000000000001 in binary floating point.
    assert size(ReserveSettings(min_idle=0, buffer=0.55, max_idle=100), active=100).ready == 55


def test_the_buffer_never_goes_below_the_minimum() -> None:
    assert size(ReserveSettings(min_idle=3, buffer=0.1, max_idle=50), active=5).ready == 3


def test_the_ready_stock_is_capped_by_the_maximum() -> None:
    assert size(ReserveSettings(min_idle=1, buffer=1.0, max_idle=6), active=40).ready == 6


def test_the_pipeline_term_adds_arrivals_expected_during_one_cold_start() -> None:
    # 30 sessions/min for a 40 s cold start: 20 replacements are warming on average.
    settings = ReserveSettings(min_idle=1, buffer=0.0, max_idle=100)
    assert size(settings, rate=0.5, cold=40.0).total == 1 + 20


def test_the_pipeline_term_scales_with_the_burst_factor() -> None:
    settings = ReserveSettings(min_idle=1, buffer=0.0, max_idle=100, burst=2.0)
    assert size(settings, rate=0.5, cold=40.0).total == 1 + 40


def test_a_fraction_of_an_expected_arrival_adds_no_bot() -> None:
    # One start a moment ago reads 1/60 per second: × 40 s = 0.67 bots, not worth a machine.
    settings = ReserveSettings(min_idle=1, buffer=0.0, max_idle=10)
    assert size(settings, rate=1 / 60, cold=40.0).total == 1


def test_the_pipeline_term_counts_whole_expected_arrivals() -> None:
    settings = ReserveSettings(min_idle=1, buffer=0.0, max_idle=10)
    assert size(settings, rate=2.5 / 60, cold=40.0).total == 1 + 1  # 1.67 expected


def test_a_whole_expected_arrival_is_not_lost_to_float_error() -> None:
    # 0.7 / 7 × 30 is 2.9999999999999996 in binary floating point.
    settings = ReserveSettings(min_idle=0, buffer=0.0, max_idle=10)
    assert size(settings, rate=0.7 / 7, cold=30.0).total == 3


def test_the_total_is_capped_by_the_maximum() -> None:
    settings = ReserveSettings(min_idle=1, buffer=0.5, max_idle=12)
    assert size(settings, active=10, rate=1.0, cold=40.0) == ReserveSize(ready=5, total=12)


def test_a_maximum_of_zero_turns_the_reserve_off() -> None:
    settings = ReserveSettings(min_idle=0, buffer=0.5, max_idle=0)
    assert not settings.enabled
    assert size(settings, active=10, rate=1.0) == ReserveSize(0, 0)


def test_a_schedule_window_raises_the_floor_while_it_is_open() -> None:
    settings = ReserveSettings(min_idle=1, max_idle=10, schedule=parse_schedule("08:00-18:00=4"))
    assert idle_floor(settings, 8 * 60) == 4
    assert idle_floor(settings, 18 * 60) == 1  # the end is exclusive
    assert idle_floor(settings, 7 * 60 + 59) == 1


def test_a_schedule_window_never_lowers_the_minimum() -> None:
    settings = ReserveSettings(min_idle=3, max_idle=10, schedule=parse_schedule("00:00-24:00=1"))
    assert idle_floor(settings, NOON) == 3


def test_a_window_that_ends_before_it_starts_wraps_past_midnight() -> None:
    window = parse_schedule("22:00-06:00=2")[0]
    assert window.contains(23 * 60) and window.contains(0) and window.contains(5 * 60 + 59)
    assert not window.contains(6 * 60) and not window.contains(NOON)


def test_a_window_to_24_00_runs_to_midnight() -> None:
    assert parse_schedule("00:00-24:00=2") == (ScheduleWindow(0, 1440, 2),)
    assert parse_schedule("00:00-24:00=2")[0].contains(1439)


def test_overlapping_windows_give_the_largest_floor() -> None:
    settings = ReserveSettings(min_idle=0, max_idle=10, schedule=parse_schedule("08:00-18:00=2, 12:00-13:00=5"))
    assert idle_floor(settings, NOON) == 5


def test_utc_minute_of_an_epoch_time() -> None:
    assert utc_minute_of(86400 * 3 + 3600 * 7 + 60 * 5 + 30) == 7 * 60 + 5


def test_settings_default_to_one_idle_bot() -> None:
    settings = ReserveSettings.from_env({})
    assert settings.enabled and settings.min_idle == 1
    assert size(settings) == ReserveSize(1, 1)


def test_settings_read_every_variable() -> None:
    settings = ReserveSettings.from_env(
        {
            "RESERVE_MIN_IDLE": "2",
            "RESERVE_BUFFER": "0.3",
            "RESERVE_MAX_IDLE": "40",
            "RESERVE_MAX_IDLE_SECONDS": "600",
            "RESERVE_SCALEDOWN_SECONDS": "90",
            "RESERVE_BURST": "1.5",
            "RESERVE_RATE_SAMPLE": "20",
            "RESERVE_COLD_START_SECONDS": "12",
            "RESERVE_SCHEDULE": "09:00-17:00=5",
        }
    )
    assert settings == ReserveSettings(
        min_idle=2,
        buffer=0.3,
        max_idle=40,
        max_idle_seconds=600.0,
        scaledown_seconds=90.0,
        burst=1.5,
        rate_sample=20,
        cold_start_seconds=12.0,
        schedule=(ScheduleWindow(540, 1020, 5),),
    )


@pytest.mark.parametrize("machines", ["local", "fly", "gce", "ecs"])
def test_the_cold_start_estimate_starts_at_the_providers_default(machines: str) -> None:
    assert ReserveSettings.from_env({}, machines).cold_start_seconds == DEFAULT_COLD_START_SECONDS[machines]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RESERVE_MIN_IDLE": "-1"}, "RESERVE_MIN_IDLE=-1 must be at least 0"),
        ({"RESERVE_MIN_IDLE": "two"}, "RESERVE_MIN_IDLE='two' is not a whole number"),
        ({"RESERVE_BUFFER": "lots"}, "RESERVE_BUFFER='lots' is not a number"),
        ({"RESERVE_BUFFER": "11"}, "RESERVE_BUFFER=11 must be at most 10"),
        ({"RESERVE_COLD_START_SECONDS": "nan"}, "RESERVE_COLD_START_SECONDS='nan' must be a finite number"),
        ({"RESERVE_COLD_START_SECONDS": "inf"}, "RESERVE_COLD_START_SECONDS='inf' must be a finite number"),
        ({"RESERVE_MAX_IDLE": "-2"}, "RESERVE_MAX_IDLE=-2 must be at least 0"),
        ({"RESERVE_MAX_IDLE_SECONDS": "5"}, "RESERVE_MAX_IDLE_SECONDS=5 must be at least 10"),
        ({"RESERVE_COLD_START_SECONDS": "0"}, "RESERVE_COLD_START_SECONDS=0 must be at least 0.1"),
        ({"RESERVE_RATE_SAMPLE": "1"}, "RESERVE_RATE_SAMPLE=1 must be at least 2"),
        ({"RESERVE_MIN_IDLE": "5", "RESERVE_MAX_IDLE": "3"}, "RESERVE_MAX_IDLE=3 is below the minimum idle count 5"),
        ({"RESERVE_SCHEDULE": "09:00-17:00=20"}, "RESERVE_MAX_IDLE=10 is below the minimum idle count 20"),
        ({"RESERVE_SCHEDULE": "9-17=2"}, "RESERVE_SCHEDULE: '9-17=2' is not a window like 08:00-18:00=4"),
        ({"RESERVE_SCHEDULE": "09:00-25:00=2"}, "RESERVE_SCHEDULE: '09:00-25:00=2' has a time outside"),
        ({"RESERVE_SCHEDULE": "09:60-10:00=2"}, "RESERVE_SCHEDULE: '09:60-10:00=2' has a time outside"),
        ({"RESERVE_SCHEDULE": "24:00-10:00=2"}, "RESERVE_SCHEDULE: '24:00-10:00=2' has a time outside"),
        ({"RESERVE_SCHEDULE": "09:00-24:30=2"}, "RESERVE_SCHEDULE: '09:00-24:30=2' has a time outside"),
        ({"RESERVE_SCHEDULE": "09:00-09:00=2"}, "RESERVE_SCHEDULE: '09:00-09:00=2' is an empty window"),
    ],
)
def test_a_bad_setting_is_one_clear_error_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match="^" + re.escape(message)):
        ReserveSettings.from_env(env)


def test_a_reserve_turned_off_accepts_any_minimum() -> None:
    # RESERVE_MAX_IDLE=0 means "off": a leftover RESERVE_MIN_IDLE must not stop the dispatcher.
    assert not ReserveSettings.from_env({"RESERVE_MAX_IDLE": "0", "RESERVE_MIN_IDLE": "3"}).enabled


def test_settings_written_as_variables_read_back_the_same() -> None:
    # Digits that a short format would round away, a wrapping window and one to midnight.
    settings = replace(
        ReserveSettings.from_env({"RESERVE_RATE_SAMPLE": "20"}),
        buffer=0.123456789,
        max_idle_seconds=600.5,
        schedule=parse_schedule("22:00-06:00=3,08:00-24:00=5"),
    )
    assert ReserveSettings.from_env(settings.to_env(), "ecs") == settings


def test_no_schedule_writes_no_schedule_variable() -> None:
    assert "RESERVE_SCHEDULE" not in ReserveSettings().to_env()
