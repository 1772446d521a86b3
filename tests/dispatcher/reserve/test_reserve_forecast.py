"""The deployment's arrivals by time of day and day of week, and the state it keeps in the store."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.reserve.forecast import (
    BUCKET_SECONDS,
    BUCKETS_PER_DAY,
    DAY_SECONDS,
    ArrivalForecast,
    week_index,
)

MONDAY = 1795392000.0  # 2026-11-23 00:00 UTC
WEEK = 7 * DAY_SECONDS


def at(day: int, hour: float) -> float:
    return MONDAY + day * DAY_SECONDS + hour * 3600


def train(forecast: ArrivalForecast, days: range, count: object) -> None:
    """Folds every bucket of `days`; `count(epoch)` gives its starts."""
    for day in days:
        for b in range(BUCKETS_PER_DAY):
            start = MONDAY + day * DAY_SECONDS + b * BUCKET_SECONDS
            forecast.fold(start, count(start))  # type: ignore[operator]


def test_the_week_starts_on_monday_utc() -> None:
    assert week_index(MONDAY) == 0
    assert week_index(at(5, 0)) == 5 * BUCKETS_PER_DAY  # Saturday 00:00


def test_an_untrained_forecast_expects_nothing_and_says_so() -> None:
    forecast = ArrivalForecast()
    assert not forecast.trained(at(0, 9))
    assert forecast.expected(at(0, 9), at(0, 10)) == 0.0


def test_a_busy_hour_is_learnt_from_one_day() -> None:
    forecast = ArrivalForecast()
    train(forecast, range(1), lambda t: 30 if 9 <= (t % DAY_SECONDS) / 3600 < 10 else 3)
    assert forecast.trained(at(1, 9.5))
    assert forecast.rate(at(1, 9.5)) == pytest.approx(30 / BUCKET_SECONDS)
    assert forecast.rate(at(1, 11)) == pytest.approx(3 / BUCKET_SECONDS)


def test_the_expected_starts_of_a_window_count_each_bucket_for_its_part() -> None:
    forecast = ArrivalForecast()
    train(forecast, range(1), lambda t: 30 if 9 <= (t % DAY_SECONDS) / 3600 < 10 else 3)
    # 08:55 to 09:05: five minutes of a quiet bucket, five of a busy one.
    assert forecast.expected(at(1, 8 + 55 / 60), at(1, 9 + 5 / 60)) == pytest.approx(1 + 10)


def test_weekends_are_told_apart_once_the_week_has_been_seen_twice() -> None:
    forecast = ArrivalForecast()
    train(forecast, range(14), lambda t: 5 if (t - MONDAY) % WEEK >= 5 * DAY_SECONDS else 20)
    assert forecast.bucket_arrivals(at(14 + 5, 12)) == pytest.approx(5)  # a Saturday
    assert forecast.bucket_arrivals(at(14 + 2, 12)) == pytest.approx(20)  # a Wednesday


def test_after_one_week_a_weekday_still_leans_on_the_days_table() -> None:
    forecast = ArrivalForecast()
    train(forecast, range(7), lambda t: 5 if (t - MONDAY) % WEEK >= 5 * DAY_SECONDS else 20)
    # One Saturday seen: half the week's own count, half the day table's mix of weekdays and weekends.
    saturday = forecast.bucket_arrivals(at(7 + 5, 12))
    assert 5 < saturday < 20


def test_a_change_of_habits_takes_over_within_three_weeks() -> None:
    # Meanwhile the planner's correction (dispatcher/reserve/demand.py) reads the difference
    # from the last 15 minutes.
    forecast = ArrivalForecast()
    train(forecast, range(21), lambda t: 10)
    train(forecast, range(21, 42), lambda t: 40)
    assert forecast.bucket_arrivals(at(42, 12)) > 30


def test_a_bucket_cannot_count_negative_starts() -> None:
    with pytest.raises(ValueError):
        ArrivalForecast().fold(MONDAY, -1)


@given(st.lists(st.tuples(st.integers(0, 4 * 7 * BUCKETS_PER_DAY), st.integers(0, 500)), max_size=60))
def test_the_state_goes_through_json_and_comes_back_the_same(folds: list[tuple[int, int]]) -> None:
    forecast = ArrivalForecast()
    for bucket, count in folds:
        forecast.fold(MONDAY + bucket * BUCKET_SECONDS, count)
    back = ArrivalForecast.from_dict(json.loads(json.dumps(forecast.to_dict())))
    for bucket, _ in folds:
        t = MONDAY + bucket * BUCKET_SECONDS
        assert back.bucket_arrivals(t) == pytest.approx(forecast.bucket_arrivals(t), abs=1e-4)
    assert back.to_dict() == forecast.to_dict()


def test_the_state_is_small_enough_for_the_store() -> None:
    forecast = ArrivalForecast()
    train(forecast, range(28), lambda t: 12.3456789)
    assert len(json.dumps(forecast.to_dict())) < 16_000


@pytest.mark.parametrize("damage", [
    {"version": 99},
    {"bucket_seconds": 60},
    {"day": [1.0] * 3},
    {"week_seen": [-1] * (7 * BUCKETS_PER_DAY)},
    {"day": ["x"] * BUCKETS_PER_DAY},
    {"week_weight": "a lot"},
    {"day": [float("nan")] * BUCKETS_PER_DAY},
])
def test_a_damaged_state_is_refused_with_what_is_wrong(damage: dict[str, object]) -> None:
    state = {**ArrivalForecast().to_dict(), **damage}
    with pytest.raises(ValueError, match="forecast state"):
        ArrivalForecast.from_dict(state)
