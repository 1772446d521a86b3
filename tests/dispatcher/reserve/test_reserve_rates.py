"""The arrival-rate and cold-start estimators the sizing reads."""

from __future__ import annotations

import math
import random

import pytest

from dispatcher.reserve.rates import RATE_HORIZON_SECONDS, ArrivalRate, ColdStartEstimate


def test_no_arrivals_read_zero() -> None:
    assert ArrivalRate().per_second(1000.0) == 0.0


def test_fewer_arrivals_than_the_sample_are_averaged_over_the_horizon() -> None:
    rate = ArrivalRate(sample=10)
    for t in (100.0, 200.0, 300.0):
        rate.record(t)
    assert rate.per_second(300.0) == pytest.approx(3 / RATE_HORIZON_SECONDS)


def test_a_full_sample_reads_its_count_over_its_span() -> None:
    rate = ArrivalRate(sample=10)
    for i in range(30):  # one every 2 s
        rate.record(i * 2.0)
    assert rate.per_second(58.0) == pytest.approx(0.5)


def test_the_rate_falls_while_nothing_arrives() -> None:
    rate = ArrivalRate(sample=10)
    for i in range(10):
        rate.record(i * 2.0)
    assert rate.per_second(18.0 + 18.0) == pytest.approx(0.25)


def test_arrivals_older_than_the_horizon_are_forgotten() -> None:
    rate = ArrivalRate(sample=3)
    for t in (0.0, 1.0, 2.0):
        rate.record(t)
    assert rate.per_second(1.5 + RATE_HORIZON_SECONDS) == pytest.approx(1 / RATE_HORIZON_SECONDS)


def test_a_sample_arriving_at_once_reads_as_a_fast_burst_not_infinity() -> None:
    rate = ArrivalRate(sample=5)
    for _ in range(5):
        rate.record(50.0)
    assert rate.per_second(50.0) == 4.0


def test_a_poisson_stream_reads_its_rate_on_average() -> None:
    draw = random.Random(7)
    rate, t, readings = ArrivalRate(sample=10), 0.0, []
    while t < 40000:
        t += draw.expovariate(0.25)
        rate.record(t)
        if t > 600:
            readings.append(rate.per_second(t + draw.expovariate(0.25)))
    assert sum(readings) / len(readings) == pytest.approx(0.25, rel=0.1)


def test_a_five_fold_burst_reads_within_a_sample_of_its_arrivals() -> None:
    rate = ArrivalRate(sample=10)
    for i in range(60):  # 10/min, then 50/min
        rate.record(i * 6.0)
    for i in range(1, 11):
        rate.record(354.0 + i * 1.2)
    assert rate.per_second(366.0) == pytest.approx(50 / 60, rel=0.01)


def test_a_quiet_cluster_of_three_does_not_read_as_a_burst() -> None:
    rate = ArrivalRate(sample=10)
    for i in range(10):  # 0.2/min
        rate.record(i * 300.0)
    for t in (3000.0, 3010.0, 3020.0):
        rate.record(t)
    assert rate.per_second(3020.0) < 0.5 / 60


def test_a_sample_needs_two_arrivals() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        ArrivalRate(sample=1)


def test_the_cold_start_estimate_starts_at_its_seed() -> None:
    assert ColdStartEstimate(40.0).seconds == 40.0


def test_an_observation_moves_the_estimate_by_its_weight() -> None:
    estimate = ColdStartEstimate(40.0, weight=0.25)
    estimate.observe(80.0)
    assert estimate.seconds == pytest.approx(50.0)
    assert estimate.observations == 1


def test_repeated_observations_converge_on_the_measured_cold_start() -> None:
    estimate = ColdStartEstimate(40.0)
    for _ in range(50):
        estimate.observe(3.0)
    assert estimate.seconds == pytest.approx(3.0, abs=0.01)


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_a_nonsense_observation_is_ignored(bad: float) -> None:
    estimate = ColdStartEstimate(40.0)
    estimate.observe(bad)
    assert estimate.seconds == 40.0 and estimate.observations == 0


@pytest.mark.parametrize(("seed", "weight"), [(0.0, 0.2), (10.0, 0.0), (10.0, 1.5)])
def test_a_cold_start_estimate_needs_a_positive_seed_and_a_weight_in_range(seed: float, weight: float) -> None:
    with pytest.raises(ValueError):
        ColdStartEstimate(seed, weight=weight)


def test_a_start_a_little_after_now_counts_and_a_clock_stepped_back_reads_no_burst() -> None:
    """Another replica's clock a little ahead records a start after the planner's `now`: it counts.
    Starts recorded before NTP stepped the clock back lie far after `now`: the rate is the one they
    had, never ten starts over a time below zero read as one second."""
    rate = ArrivalRate(10)
    for i in range(10):
        rate.record(1000.0 + 10.0 * i)  # the last at 1090
    assert rate.per_second(1089.9) == pytest.approx(9 / 90, rel=0.01)
    assert rate.per_second(1090.0 - 3600.0) == pytest.approx(9 / 90)
