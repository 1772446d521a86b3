"""Expected starts over a lead time: the forecast ahead, corrected by the last minutes, or a burst."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.reserve.demand import CORRECTION_MINUTES, Demand, RecentCounts, correction, expected_demand
from dispatcher.reserve.forecast import BUCKET_SECONDS, BUCKETS_PER_DAY, DAY_SECONDS, ArrivalForecast

MONDAY = 1795392000.0
BUSY_FROM = 9 * 3600.0  # every day: 2 starts per bucket, then 60 per bucket from 09:00 to 12:00


def daily(forecast: ArrivalForecast, days: int = 14) -> ArrivalForecast:
    for day in range(days):
        for b in range(BUCKETS_PER_DAY):
            start = MONDAY + day * DAY_SECONDS + b * BUCKET_SECONDS
            forecast.fold(start, 60 if BUSY_FROM <= b * BUCKET_SECONDS < 12 * 3600 else 2)
    return forecast


FORECAST = daily(ArrivalForecast())
DAY = MONDAY + 14 * DAY_SECONDS


def seen(times: list[float]) -> RecentCounts:
    recent = RecentCounts()
    recent.window(times[0] if times else DAY)  # counting began with the first of them
    for t in times:
        recent.record(t)
    return recent


def demand_at(now: float, recent: RecentCounts, *, rate: float = 0.0, lead: float = 40.0,
              forecast: ArrivalForecast | None = FORECAST, horizon: float = 0.0) -> Demand:
    return expected_demand(forecast, recent, now=now, lead_seconds=lead, recent_rate=rate, surge_horizon=horizon)


def as_forecast(now: float, per_bucket: float) -> list[float]:
    """Starts spread as the forecast expects them over the correction window before `now`."""
    window = CORRECTION_MINUTES * 60
    n = max(1, round(per_bucket * window / BUCKET_SECONDS))
    return [now - window + (i + 0.5) * window / n for i in range(n)]


def test_the_forecast_raises_the_demand_one_lead_time_before_a_busy_hour() -> None:
    before = DAY + BUSY_FROM - 60
    quiet = demand_at(before, seen(as_forecast(before, 2)))
    ahead = demand_at(DAY + BUSY_FROM - 20, seen(as_forecast(before, 2)))
    assert quiet.lead_arrivals == pytest.approx(2 / 900 * 40, rel=0.2)
    assert ahead.lead_arrivals > 10 * quiet.lead_arrivals  # half the lead is in the busy bucket


def test_a_forecast_proved_wrong_falls_within_the_window() -> None:
    now = DAY + BUSY_FROM + 1800  # a busy time on every day before: 60 expected per bucket
    right = demand_at(now, seen(as_forecast(now, 60)))
    wrong = demand_at(now, seen([now - 3600]))  # no start in the window where 20 were expected
    assert wrong.lead_arrivals < 0.2 * right.lead_arrivals


def test_a_burst_the_forecast_did_not_know_shows_at_once() -> None:
    now = DAY + 3 * 3600  # a quiet time
    burst = demand_at(now, seen(as_forecast(now, 2)), rate=1.0)
    assert burst.lead_arrivals == pytest.approx(40.0)
    assert burst.rate == pytest.approx(1.0)


def test_after_a_restart_the_minutes_nobody_counted_do_not_read_as_quiet() -> None:
    now = DAY + BUSY_FROM + 1800
    fresh = RecentCounts()  # a new lease holder without the last minutes' counts
    assert demand_at(now, fresh).lead_arrivals == pytest.approx(60 / 900 * 40, rel=0.05)


def test_without_a_forecast_the_recent_rate_decides() -> None:
    now = DAY + BUSY_FROM
    assert demand_at(now, seen([]), rate=0.1, forecast=None).lead_arrivals == pytest.approx(4.0)
    assert demand_at(now, seen([]), rate=0.1, forecast=ArrivalForecast()).lead_arrivals == pytest.approx(4.0)


def test_the_surge_base_is_the_forecast_not_the_burst_under_way() -> None:
    now = DAY + 3 * 3600
    burst = demand_at(now, seen(as_forecast(now, 40)), rate=1.0, horizon=3600.0)
    assert burst.base_rate == pytest.approx(2 / 900)  # the quiet hours' rate, not the burst's


def test_a_surge_horizon_of_zero_computes_no_base() -> None:
    assert demand_at(DAY, seen([])).base_rate == 0.0


@given(st.integers(0, 10_000), st.floats(min_value=0.0, max_value=10_000.0))
def test_the_correction_is_positive_and_one_when_the_forecast_was_right(n: int, expected: float) -> None:
    assert correction(n, expected) > 0
    assert correction(n, float(n)) == pytest.approx(1.0)


def test_the_counts_keep_the_window_and_go_through_json() -> None:
    recent = seen([DAY + i * 60 for i in range(30)])  # one a minute for half an hour
    start, count = recent.window(DAY + 29 * 60 + 30)
    assert count == CORRECTION_MINUTES + 1 and start == DAY + (29 - CORRECTION_MINUTES) * 60
    back = RecentCounts.from_dict(json.loads(json.dumps(recent.to_dict())))
    assert back.window(DAY + 29 * 60 + 30) == (start, count)


@pytest.mark.parametrize("state", [{"since": "x", "minutes": {}}, {"since": 1.0, "minutes": {"-3": 1}},
                                   {"since": 1.0, "minutes": {"5": -1}}, {"since": 1.0}])
def test_damaged_counts_are_refused(state: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="recent counts"):
        RecentCounts.from_dict(state)


def test_a_lead_time_must_be_positive() -> None:
    with pytest.raises(ValueError):
        demand_at(DAY, seen([]), lead=0.0)


def test_a_start_in_the_next_minute_counts_and_minutes_after_a_step_back_do_not() -> None:
    """A start another replica saw a little ahead of the planner's clock, in the next minute, is
    counted; the minutes counted before NTP stepped the clock back are not this window's."""
    recent = RecentCounts()
    recent.record(6000.0)
    recent.record(6060.5)  # the next minute, seen a little ahead
    assert recent.window(6059.9)[1] == 2
    assert recent.window(6000.0 - 3600.0)[1] == 0
