"""Callers who give up on a canary's bot not ready, through the judge's real code (`outcome_of`,
`ReleaseHealth`, its bound on a caller's wait); only the traffic is simulated (HMAC-drawn, 50/50).

- On a cloud provider whose quote for a cold start (38 to 70 s) is past any caller's patience, the
  stable release's own cold starts bound the wait: a canary whose bots hang is rolled back.
- A caller who gives up sooner than the bound leaves a time to ready of at least their wait: a
  canary whose bots are slow to be ready is seen so even when its callers do not wait for them."""

from __future__ import annotations

import random

from dispatcher.releases.health import HealthRule, ReleaseHealth
from dispatcher.sessions.release_outcome import outcome_of
from tests.dispatcher.releases.test_caller_hang_ups import _timeline
from tests.dispatcher.releases.test_health import Clock

CLOUD_QUOTES = (38.0, 44.1, 62.6, 70.5)  # Cloud Run, GCE, ECS, ACI: the dispatcher's quote for a cold start


def _judged(rng: random.Random, stopped_unready: float, stop_at: tuple[float, float], quote: float) -> ReleaseHealth:
    """600 starts, cold ones (as a start without a reserve is); a `stopped_unready` share of the
    canary's are stopped by their callers after `stop_at` seconds, their bot never ready."""
    health = ReleaseHealth(HealthRule(), clock=Clock())
    for _ in range(600):
        release = "next" if rng.random() < 0.5 else "stable"
        hung = release == "next" and rng.random() < stopped_unready
        events = _timeline(release, "honest", stop=rng.uniform(*stop_at) if hung else None)
        bound = health.stopped_waiting_bound("stable", warm=False, cold_start=quote)
        outcome = outcome_of(events, gave_up_after=bound)
        assert outcome is not None
        health.observe(outcome)
    return health


def test_callers_who_give_up_on_a_hung_canary_roll_it_back_whatever_a_cold_starts_quote() -> None:
    for quote in CLOUD_QUOTES:
        health = _judged(random.Random(3), 0.3, (25.0, 35.0), quote)
        assert health.stopped_waiting_bound("stable", warm=False, cold_start=quote) == 5.0  # the stable's own
        breach = health.verdict("next", "stable")
        assert breach is not None and breach.signal == "failures" and "failed to start" in breach.reason, quote


def test_callers_who_give_up_sooner_than_the_bound_still_show_a_canary_slow_to_be_ready() -> None:
    # Ready in 1.5 s on the stable release; 7 in 10 of the canary's callers stop after 3 to 4.5 s,
    # sooner than the bound (5 s): no failure, but its bots were not ready by then.
    health = _judged(random.Random(4), 0.7, (3.0, 4.5), 60.0)
    breach = health.verdict("next", "stable")
    assert breach is not None and breach.signal == "ready", breach


def test_a_stable_releases_callers_who_give_up_at_once_never_make_an_equal_canary_look_slow() -> None:
    # Their waits are censored on the stable side as "longer than we know": they can only make the
    # stable release look slower, never the canary.
    rng, health = random.Random(5), ReleaseHealth(HealthRule(), clock=Clock())
    for _ in range(1600):
        release = "next" if rng.random() < 0.5 else "stable"
        quick = release == "stable" and rng.random() < 0.75
        outcome = outcome_of(_timeline(release, "honest", stop=0.3 if quick else None), gave_up_after=5.0)
        assert outcome is not None
        health.observe(outcome)
    assert health.verdict("next", "stable") is None and health.health("next", "stable").state == "healthy"
