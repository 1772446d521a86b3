"""The arrival-rate and cold-start estimators the sizing reads."""

from __future__ import annotations

import math
import random

import pytest

from dispatcher.reserve_rates import ArrivalRate, ColdStartEstimate


def test_no_arrivals_read_zero() -> None:
    assert ArrivalRate(60.0).per_second(1000.0) == 0.0


def test_one_arrival_adds_one_over_the_window() -> None:
    rate = ArrivalRate(60.0)
    rate.record(10.0)
    assert rate.per_second(10.0) == pytest.approx(1 / 60)


def test_the_rate_decays_by_e_per_window() -> None:
    rate = ArrivalRate(60.0)
    rate.record(0.0, count=6)
    assert rate.per_second(60.0) == pytest.approx(0.1 / math.e)


def test_a_steady_stream_reads_its_rate() -> None:
    rate = ArrivalRate(30.0)
    for i in range(600):  # one every 2 s for 20 minutes
        rate.record(i * 2.0)
    assert rate.per_second(1199.0) == pytest.approx(0.5, rel=0.05)


def test_a_poisson_stream_reads_its_rate_on_average() -> None:
    draw = random.Random(7)
    rate, t, readings = ArrivalRate(60.0), 0.0, []
    while t < 20000:
        t += draw.expovariate(0.25)
        rate.record(t)
        if t > 600:
            readings.append(rate.per_second(t + draw.uniform(0, 4)))
    assert sum(readings) / len(readings) == pytest.approx(0.25, rel=0.1)


def test_a_step_up_reaches_most_of_the_new_rate_within_one_window() -> None:
    rate = ArrivalRate(60.0)
    for i in range(60):  # 1 per 10 s, then 1 per 2 s
        rate.record(i * 10.0)
    for i in range(1, 31):
        rate.record(600.0 + i * 2.0)
    assert rate.per_second(660.0) > 0.1 + 0.6 * (0.5 - 0.1)


def test_a_clock_that_steps_back_never_raises_the_rate() -> None:
    rate = ArrivalRate(60.0)
    rate.record(100.0)
    assert rate.per_second(50.0) == pytest.approx(1 / 60)


def test_a_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        ArrivalRate(0.0)


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
