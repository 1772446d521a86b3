"""Automatic rollback's judgement (dispatcher/releases/health.py) on seeded sessions and a hand-moved clock."""

from __future__ import annotations

import math
import random

import pytest

from dispatcher.releases.health import HealthRule, ReleaseHealth, SessionOutcome
from dispatcher.releases.health_stats import probability_worse, quantile_ranks, regularized_beta

# What a test promises: the default rule rolls a canary back within these many of its sessions.
BROKEN_WITHIN = 20  # every session's bot raises
LATE_WITHIN = 20  # every answer 3 s later than the stable's


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def session(rng: random.Random, release: str, *, broken: bool = False, late: float = 0.0) -> SessionOutcome:
    """A session as callers see it: 2 % fail (start, bot error, hung up within 5 s), ready about
    1.5 s, first audio about 0.8 s (lognormal)."""
    roll = rng.random()
    failed_start, bot_error = roll < 0.005, broken or 0.005 <= roll < 0.01
    lasted = 2.0 if 0.01 <= roll < 0.02 else rng.lognormvariate(math.log(120.0), 1.0)
    return SessionOutcome(
        release=release, failed_start=failed_start, bot_error=bot_error,
        ready_seconds=None if failed_start else rng.lognormvariate(math.log(1.5), 0.35),
        ended_within_seconds=None if failed_start else lasted,
        first_audio_seconds=None if failed_start else late + rng.lognormvariate(math.log(0.8), 0.3))


def warmed(rng: random.Random, stable_sessions: int = 200, clock: Clock | None = None) -> ReleaseHealth:
    health = ReleaseHealth(clock=clock or Clock())
    for _ in range(stable_sessions):
        health.observe(session(rng, "stable"))
    return health


def canary_sessions_until_breach(health: ReleaseHealth, rng: random.Random, limit: int, *, broken: bool = False,
                                 late: float = 0.0) -> int:
    """Canary sessions (each beside 19 of the stable's, a 5 % canary) until the verdict is a breach."""
    for n in range(1, limit + 1):
        for _ in range(19):
            health.observe(session(rng, "stable"))
        health.observe(session(rng, "canary", broken=broken, late=late))
        if health.verdict("canary", "stable") is not None:
            return n
    return limit + 1


@pytest.mark.parametrize("seed", range(5))
def test_a_canary_whose_bot_raises_in_every_session_is_breached_at_the_minimum_sample(seed: int) -> None:
    rng = random.Random(seed)
    health = warmed(rng)
    assert canary_sessions_until_breach(health, rng, 100, broken=True) == BROKEN_WITHIN
    breach = health.verdict("canary", "stable")
    assert breach is not None and breach.signal == "failures"
    assert breach.reason.startswith(f"{BROKEN_WITHIN} of {BROKEN_WITHIN} sessions failed (")
    assert "bot error" in breach.reason and "(stable: " in breach.reason
    assert health.verdict("stable", "stable") is None  # the stable release is never judged


@pytest.mark.parametrize("seed", range(5))
def test_a_canary_that_answers_3_s_late_is_breached_on_first_audio(seed: int) -> None:
    rng = random.Random(seed)
    health = warmed(rng)
    assert canary_sessions_until_breach(health, rng, 100, late=3.0) <= LATE_WITHIN
    breach = health.verdict("canary", "stable")
    assert breach is not None and breach.signal == "first_audio"
    assert breach.reason.startswith("median first audio ")


def test_two_identical_releases_are_not_judged_apart() -> None:
    rng = random.Random(7)
    health = warmed(rng)
    assert canary_sessions_until_breach(health, rng, 2_000) == 2_001
    assert health.health("canary", "stable").state == "healthy"


def test_below_the_minimum_sample_nothing_is_judged() -> None:
    rng = random.Random(1)
    health = warmed(rng)
    for _ in range(HealthRule().min_canary - 1):
        health.observe(session(rng, "canary", broken=True))
    assert health.verdict("canary", "stable") is None
    assert health.health("canary", "stable").state == "watching"
    health.observe(session(rng, "canary", broken=True))
    assert health.verdict("canary", "stable") is not None


def test_a_small_stable_sample_judges_nothing() -> None:
    rng = random.Random(2)
    health = warmed(rng, stable_sessions=HealthRule().min_stable - 1)
    for _ in range(50):
        health.observe(session(rng, "canary", broken=True))
    assert health.verdict("canary", "stable") is None
    assert health.health("canary", "stable").state == "watching"


@pytest.mark.parametrize(("failed", "breached"), [(2, False), (4, True)])
def test_a_few_failures_against_a_spotless_stable_are_weighed_by_their_uncertainty(failed: int, breached: bool) -> None:
    """2 of 20 (10 %) beside 0 of 100 is only 95 % sure to be 3 points worse; 4 of 20 is 99.8 % sure."""
    health = ReleaseHealth()
    for _ in range(100):
        health.observe(SessionOutcome("stable", False, False, 1.5, 60.0, 0.8))
    for i in range(20):
        health.observe(SessionOutcome("canary", i < failed, False, None if i < failed else 1.5, None, None))
    breach = health.verdict("canary", "stable")
    if breached:
        assert breach is not None and breach.reason == "4 of 20 sessions failed (4 failed to start) (stable: 0 of 100)"
    else:
        assert breach is None


def test_a_breach_stays_until_an_operator_changes_traffic() -> None:
    rng = random.Random(3)
    health = warmed(rng)
    canary_sessions_until_breach(health, rng, 100, broken=True)
    first = health.verdict("canary", "stable")
    for _ in range(400):  # the window fills with healthy sessions: the breach holds all the same
        health.observe(session(rng, "canary"))
    assert health.verdict("canary", "stable") == first
    assert health.health("canary", "stable").state == "breached"
    health.reset("canary")
    assert health.verdict("canary", "stable") is None
    assert health.health("canary", "stable").state == "watching"  # judged afresh, from no sessions


def test_sessions_older_than_the_window_age_are_forgotten() -> None:
    rng, clock = random.Random(4), Clock()
    health = warmed(rng, clock=clock)
    for _ in range(HealthRule().min_canary - 1):
        health.observe(session(rng, "canary", broken=True))
    clock.now += HealthRule().max_age_seconds + 1
    for _ in range(HealthRule().min_stable):
        health.observe(session(rng, "stable"))
    health.observe(session(rng, "canary", broken=True))  # one broken session of a fresh window
    assert health.verdict("canary", "stable") is None


def test_the_window_is_bounded_in_sessions() -> None:
    rng = random.Random(5)
    health = ReleaseHealth(HealthRule(window=150))
    for _ in range(140):  # a failing past falls out of the window...
        health.observe(SessionOutcome("canary", True, False, None, None, None))
    for _ in range(1_000):
        health.observe(session(rng, "stable"))
        health.observe(session(rng, "canary"))
    assert health.verdict("canary", "stable") is None  # ...and is not held against the canary
    assert health.health("canary", "stable").state == "healthy"


def test_a_rule_whose_window_cannot_hold_its_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="window must hold"):
        HealthRule(window=50, min_stable=100)


def test_the_regularized_beta_matches_its_closed_forms() -> None:
    assert regularized_beta(1, 5, 0.3) == pytest.approx(1 - 0.7**5, rel=1e-12)
    assert regularized_beta(3, 1, 0.3) == pytest.approx(0.3**3, rel=1e-12)
    assert regularized_beta(4, 7, 0.6) == pytest.approx(1 - regularized_beta(7, 4, 0.4), rel=1e-12)


@pytest.mark.parametrize(("failed", "n", "failed_s", "n_s"), [(1, 20, 3, 140), (5, 30, 4, 200), (0, 20, 0, 100)])
def test_the_posterior_matches_the_exact_sum_without_a_margin(failed: int, n: int, failed_s: int, n_s: int) -> None:
    # P(p_c > p_s) for Beta(a, b) against Beta(c, d) with integer c (Evan Miller's closed form).
    a, b, c, d = failed + 1, n - failed + 1, failed_s + 1, n_s - failed_s + 1

    def log_beta(x: float, y: float) -> float:
        return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)

    stable_worse = sum(math.exp(log_beta(a + i, b + d) - math.log(d + i) - log_beta(1 + i, d) - log_beta(a, b))
                       for i in range(c))
    assert probability_worse(failed, n, failed_s, n_s, 0.0) == pytest.approx(1 - stable_worse, abs=1e-4)


def test_quantile_ranks_are_the_order_statistics_binomial_bounds_give() -> None:
    # P(Bin(20, 1/2) <= 3) = 1351 / 2**20 = 0.0013 <= 0.005 < P(<= 4): the 4th and 17th of 20.
    assert quantile_ranks(20, 0.5, 0.005) == (4, 17)
    assert sum(math.comb(20, i) for i in range(4)) == 1351
    assert quantile_ranks(7, 0.5, 0.005) == (None, None)  # 7 samples cannot bound a median at 99.5 %
