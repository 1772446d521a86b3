"""No one key decides a canary's verdict (dispatcher/releases/key_shares.py): each key's sessions
weigh in each release's sample at most twice its share of the traffic over the same hours."""

from __future__ import annotations

import random
from dataclasses import replace

from dispatcher.releases.health import HealthRule, ReleaseHealth, SessionOutcome
from dispatcher.releases.health_window import Entry
from dispatcher.releases.key_shares import within_key_shares
from dispatcher.sessions.release_sample import SharedSample
from dispatcher.store.release_samples import MemoryReleaseSamples
from tests.dispatcher.releases.test_health import Clock, session

HONEST, GRINDER = "honest-caller-id", "grinding-caller"


def _ended_early(release: str, key: str | None) -> SessionOutcome:
    """A session its caller left within two seconds of a ready bot (a hang-up, not a stop)."""
    return SessionOutcome(release=release, failed_start=False, bot_error=False, ready_seconds=1.2,
                          ended_within_seconds=1.9, key=key)


def _grind_sessions(key: str | None) -> list[SessionOutcome]:
    """An honest key drawn about 90/10 (52 stable sessions, 8 canary), then one key's 12 short canary
    sessions and none on the stable release: the canary `next` is no worse than `stable` (the stable's
    minimum sample lowered to 40, the canary's at its default 20)."""
    rng = random.Random(7)
    honest = [replace(session(rng, "next" if n % 7 == 6 else "stable"), ended_within_seconds=120.0,
                      failed_start=False, bot_error=False, key=HONEST if key is not None else None) for n in range(60)]
    return honest + [_ended_early("next", key) for _ in range(12)]


def _grind(key: str | None) -> ReleaseHealth:
    health = ReleaseHealth(HealthRule(min_stable=40), clock=Clock())
    for outcome in _grind_sessions(key):
        health.observe(outcome)
    return health


def test_one_key_crowding_short_sessions_onto_a_canary_weighs_as_its_share_and_cannot_roll_it_back() -> None:
    health = _grind(GRINDER)
    assert health.verdict("next", "stable") is None
    state = health.health("next", "stable")
    assert state.state in ("watching", "healthy"), state


def test_the_same_sessions_without_their_keys_would_roll_it_back() -> None:
    # What the bound prevents: entries recorded without a key (as before keys were kept) weigh fully.
    assert _grind(None).verdict("next", "stable") is not None


def test_a_key_that_is_the_whole_deployments_traffic_still_rolls_back_a_broken_canary() -> None:
    rng, health = random.Random(3), ReleaseHealth(clock=Clock())
    for n in range(400):
        broken = n % 10 == 0
        health.observe(replace(session(rng, "next" if broken else "stable", broken=broken), key=HONEST))
        if health.verdict("next", "stable") is not None:
            break
    breach = health.verdict("next", "stable")
    assert breach is not None and breach.signal == "failures", breach


def test_keys_drawn_by_weight_keep_every_session_and_a_crowding_key_keeps_its_newest() -> None:
    stable = [Entry(float(n), None, 1.0, None, None, key) for n, key in enumerate(["a"] * 90 + ["b"] * 90)]
    canary = [Entry(float(n), None, 1.0, None, None, key) for n, key in enumerate(["a"] * 10 + ["b"] * 10)]
    assert within_key_shares(canary, stable) is None
    crowded = canary + [Entry(100.0 + n, "ended early", 1.0, None, None, "c") for n in range(20)]
    kept = within_key_shares(crowded, stable)
    assert kept is not None
    from_c = [entry for entry in kept if entry[5] == "c"]
    # c: 20 of 220 sessions, twice its share of the canary's 40 is 8 (rounded up); a and b are untouched.
    assert [entry[0] for entry in from_c] == [112.0 + n for n in range(8)]
    assert len(kept) == 20 + 8
    unkeyed = [Entry(float(n), None, 1.0, None, None, None) for n in range(30)]
    assert within_key_shares(unkeyed, stable) is None


async def test_each_sessions_key_travels_through_the_deployments_sample_where_older_readers_see_no_talk() -> None:
    samples = MemoryReleaseSamples()
    shared = SharedSample(ReleaseHealth(HealthRule(min_stable=40), clock=Clock()), samples)
    for n, outcome in enumerate(_grind_sessions(GRINDER)):
        assert await shared.add(f"s{n}", outcome)
    recorded = (await samples.read("next", 0)).entries[-1][1]
    assert recorded[4:] == [None, GRINDER]  # the conversation's slot: None, as a reader before keys takes it
    await shared.catch_up("next", "stable")
    assert shared.health.verdict("next", "stable") is None


def _entries(keys: list[str], start: float = 0.0) -> list[Entry]:
    return [Entry(start + n, None, 1.0, None, None, key) for n, key in enumerate(keys)]


def test_a_key_crowding_a_full_canary_window_weighs_as_its_share_of_the_traffic_over_the_same_hours() -> None:
    # A 10 % canary: its window of 300 spans the stable release's 2,700 sessions, not the stable's last
    # 300. A key configured to the canary, half of its window, is a twentieth of the traffic.
    health = ReleaseHealth(HealthRule(min_canary=250), clock=Clock())
    for n in range(3000):
        canary = n % 10 == 0
        key = "beta" if canary and n % 20 == 0 else HONEST
        health.observe(SessionOutcome("next" if canary else "stable", False, False, 1.2, None, key=key))
    # beta: 150 in 3,000 sessions, counted twice that share of the canary's 300, beside the other 150.
    assert health.health("next", "stable").reason == "180 of 250 sessions judged (stable: 300 of 100)"


def test_a_key_crowding_the_stables_sample_is_bounded_there_too() -> None:
    # A canary at 80 %: a key configured to the stable release, 100 of the 520 sessions over the same
    # hours, is most of the stable's 120; it counts twice its share of the traffic of them, 47.
    health = ReleaseHealth(HealthRule(), clock=Clock())
    for n in range(520):
        release, key = ("stable", "crowder") if n % 26 < 5 else ("stable", HONEST) if n % 26 == 5 else ("next", HONEST)
        health.observe(SessionOutcome(release, False, False, 1.2, None, key=key))
    assert health.health("next", "stable").reason == "300 of 20 sessions judged (stable: 67 of 100)"  # 20 + 47


def test_keys_drawn_by_weight_into_two_full_windows_keep_nearly_every_session() -> None:
    rng = random.Random(11)
    keys = [f"key-{n}" for n in range(8)]
    weights = [30, 20, 15, 10, 10, 5, 5, 5]
    canary, stable = (_entries(rng.choices(keys, weights, k=300)) for _ in range(2))
    for ours, theirs in ((canary, stable), (stable, canary)):
        kept = within_key_shares(ours, theirs)
        assert kept is None or len(kept) >= 290  # a binomial wander past twice a share is rare
