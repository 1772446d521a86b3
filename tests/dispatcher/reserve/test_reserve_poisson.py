"""The stock that covers a Poisson number of starts with a given probability."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.reserve.poisson import EXACT_UP_TO, poisson_quantile

LEVELS = st.floats(min_value=0.5, max_value=0.999)


def cdf(mean: float, k: int) -> float:
    """P(N <= k), summed in log space so that large means do not underflow."""
    return sum(math.exp(i * math.log(mean) - mean - math.lgamma(i + 1)) for i in range(k + 1))


@given(st.floats(min_value=0.001, max_value=EXACT_UP_TO), LEVELS)
def test_the_quantile_is_the_smallest_stock_that_covers_the_starts(mean: float, p: float) -> None:
    k = poisson_quantile(mean, p)
    assert cdf(mean, k) >= p - 1e-12
    assert k == 0 or cdf(mean, k - 1) < p


@given(st.floats(min_value=EXACT_UP_TO + 0.001, max_value=800.0), LEVELS)
def test_above_the_exact_range_the_approximation_is_within_one_bot(mean: float, p: float) -> None:
    exact, total = 0, math.exp(-mean)
    while total < p:
        exact += 1
        total += math.exp(exact * math.log(mean) - mean - math.lgamma(exact + 1))
    assert abs(poisson_quantile(mean, p) - exact) <= 1


@given(st.floats(min_value=0.0, max_value=400.0), st.floats(min_value=0.0, max_value=5.0), LEVELS)
def test_more_expected_starts_never_need_fewer_bots(mean: float, more: float, p: float) -> None:
    assert poisson_quantile(mean + more, p) >= poisson_quantile(mean, p)


def test_no_expected_start_needs_no_bot() -> None:
    assert poisson_quantile(0.0, 0.999) == 0


def test_a_quiet_lead_time_still_needs_a_margin() -> None:
    # 0.33 expected starts (0.5/min during a 40 s cold start): one bot covers 95 %, 99 % needs two.
    assert (poisson_quantile(0.33, 0.95), poisson_quantile(0.33, 0.99)) == (1, 2)


@pytest.mark.parametrize(("mean", "p"), [(-1.0, 0.9), (math.inf, 0.9), (math.nan, 0.9), (1.0, 0.0), (1.0, 1.0)])
def test_nonsense_is_refused(mean: float, p: float) -> None:
    with pytest.raises(ValueError):
        poisson_quantile(mean, p)
