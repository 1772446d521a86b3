"""The time a machine takes: the mean the sizing uses and the wait a start is told."""

from __future__ import annotations

import json
import math
import random

import pytest

from dispatcher.reserve.wait import DurationEstimate


def lognormal(draw: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(draw.gauss(0.0, sigma))


def test_before_any_measurement_it_quotes_the_published_median_and_spread() -> None:
    estimate = DurationEstimate(40.0, sigma=0.4)
    assert estimate.quote(0.5) == pytest.approx(40.0)
    assert estimate.quote(0.9) == pytest.approx(40.0 * math.exp(1.2816 * 0.4), rel=1e-3)
    assert estimate.mean == pytest.approx(40.0 * math.exp(0.08))


def test_it_learns_what_this_deployment_measures() -> None:
    draw = random.Random(5)
    estimate = DurationEstimate(40.0, sigma=0.4)
    for _ in range(300):
        estimate.observe(lognormal(draw, 70.0, 0.2))
    assert estimate.quote(0.5) == pytest.approx(70.0, rel=0.1)
    assert estimate.quote(0.9) == pytest.approx(70.0 * math.exp(1.2816 * 0.2), rel=0.1)


def test_the_wait_it_tells_is_kept_about_as_often_as_promised() -> None:
    draw = random.Random(9)
    estimate = DurationEstimate(3.0, sigma=0.6)
    kept = told = 0
    for _ in range(4000):
        actual = lognormal(draw, 3.0, 0.6)
        kept += actual <= estimate.quote(0.9)
        told += 1
        estimate.observe(actual)
    assert 0.86 <= kept / told <= 0.94


def test_one_machine_stuck_for_minutes_moves_it_by_a_fraction() -> None:
    estimate = DurationEstimate(40.0, sigma=0.3)
    estimate.observe(3600.0)
    assert estimate.quote(0.5) < 45.0
    assert estimate.quote(0.9) < 1.5 * DurationEstimate(40.0, sigma=0.3).quote(0.9)


@pytest.mark.parametrize("glitch", [0.0, -3.0, math.inf, math.nan])
def test_a_clock_glitch_is_not_a_measurement(glitch: float) -> None:
    estimate = DurationEstimate(40.0)
    estimate.observe(glitch)
    assert estimate.observations == 0 and estimate.quote(0.5) == pytest.approx(40.0)


def test_what_it_measured_moves_to_the_next_lease_holder() -> None:
    estimate = DurationEstimate(40.0)
    for seconds in (50.0, 55.0, 61.0):
        estimate.observe(seconds)
    heir = DurationEstimate(40.0)
    heir.restore(json.loads(json.dumps(estimate.to_dict())))
    assert (heir.mean, heir.quote(), heir.observations) == (estimate.mean, estimate.quote(), 3)


def test_a_state_never_measured_keeps_the_configured_start() -> None:
    heir = DurationEstimate(30.0)
    heir.restore(DurationEstimate(40.0).to_dict())
    assert heir.quote(0.5) == pytest.approx(30.0)


@pytest.mark.parametrize("state", [{"mu": "x", "var": 0.1, "observations": 1}, {"mu": 1.0, "var": -1.0,
                                   "observations": 1}, {"mu": 1.0, "var": 0.1, "observations": -2}, {}])
def test_a_damaged_state_is_refused(state: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="duration state"):
        DurationEstimate(40.0).restore(state)


def test_nonsense_start_values_are_refused() -> None:
    with pytest.raises(ValueError):
        DurationEstimate(0.0)
