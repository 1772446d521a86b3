"""What one key's callers can do to the verdict by how they leave, through the judge's real code:
each session a timeline as the dispatcher writes it (`outcome_of`), judged by `ReleaseHealth` with
the default rule; only the traffic is simulated (HMAC-drawn, 90/10).

- Hanging up over the transport (no stop) at once on the canary's sessions rolls back nothing: not
  as sessions ended early, nor as callers who left within the first turn (one key's doing).
- Hanging up at once on the stable release's sessions does not hide a broken canary.
- A fault that reaches every key's callers still rolls a canary back."""

from __future__ import annotations

import random
from typing import Any

from dispatcher.releases.health import HealthRule, ReleaseHealth
from dispatcher.sessions.release_outcome import outcome_of
from tests.dispatcher.releases.test_health import Clock

T0 = 1_800_000_000.0
FIGURES = {"caller_turns": 3, "unanswered": 0, "bot_turns": 4, "cut_off": 0, "latencies": [0.7, 0.8, 0.9],
           "left_in_first_turn": False}
LEFT_IN_FIRST_TURN = {**FIGURES, "caller_turns": 0, "bot_turns": 1, "latencies": [], "left_in_first_turn": True}


def _timeline(release: str, key: str, *, end: float = 60.0, reason: str = "peer_disconnected",
              figures: dict[str, Any] | None = None, stop: float | None = None) -> list[dict[str, Any]]:
    """A session as the dispatcher writes it: ready 1.5 s after its start, joined at 2 s."""
    events: list[dict[str, Any]] = [
        {"event": "requested", "at": T0, "release": release, "release_chosen_by": "weight", "caller_id": key},
        {"event": "launched", "at": T0 + 0.2}]
    if stop is not None:  # stopped by its caller before its bot was ready
        return [*events, {"event": "stop_requested", "at": T0 + stop},
                {"event": "machine_ended", "at": T0 + stop + 0.5, "state": "ended"}]
    return [*events, {"event": "ready", "at": T0 + 1.5}, {"event": "joined", "at": T0 + 2.0},
            {"event": "first_audio", "at": T0 + 2.8},
            {"event": "ended", "at": T0 + end, "reason": reason, "conversation": figures or FIGURES},
            {"event": "machine_ended", "at": T0 + end + 1.0, "state": "ended"}]


def _judge(sessions: list[list[dict[str, Any]]]) -> ReleaseHealth:
    health = ReleaseHealth(HealthRule(), clock=Clock())
    for events in sessions:
        outcome = outcome_of(events, gave_up_after=5.0)
        if outcome is not None:
            health.observe(outcome)
    return health


def _drawn(rng: random.Random, n: int) -> list[str]:
    return ["next" if rng.random() < 0.1 else "stable" for _ in range(n)]


def test_a_key_hanging_up_over_the_transport_on_the_canarys_sessions_rolls_back_nothing() -> None:
    rng = random.Random(7)
    for share in (0.15, 0.3):  # a key with more than half of the canary's sample is most of its callers
        sessions = []
        for release in _drawn(rng, 1000):
            if rng.random() < share and release == "next":  # two seconds in, before the bot could answer
                sessions.append(_timeline(release, "attacker", end=4.0, figures=LEFT_IN_FIRST_TURN))
            else:
                sessions.append(_timeline(release, "attacker" if rng.random() < share else "honest"))
        health = _judge(sessions)
        assert health.verdict("next", "stable") is None, (share, health.health("next", "stable"))
        assert health.health("next", "stable").state == "healthy"


def test_a_key_hanging_up_on_the_stables_sessions_does_not_hide_a_canary_whose_bot_errors() -> None:
    rng = random.Random(7)
    for share in (0.0, 0.1, 0.15):
        sessions = []
        for release in _drawn(rng, 3000):
            key = "attacker" if rng.random() < share else "honest"  # its sessions drawn as everyone's
            if release == "next" and rng.random() < 0.12:  # the canary's bot errors on 12 % of its calls
                sessions.append(_timeline(release, key, end=20.0, reason="error"))
            elif release == "stable" and key == "attacker":  # it hangs up at once on the stable's only
                sessions.append(_timeline(release, key, end=3.5, figures=LEFT_IN_FIRST_TURN))
            else:
                sessions.append(_timeline(release, key))
        breach = _judge(sessions).verdict("next", "stable")
        assert breach is not None and breach.signal == "failures", (share, breach)


def test_a_canary_that_every_keys_callers_leave_is_rolled_back_whichever_key_is_left_out() -> None:
    rng = random.Random(9)
    keys, weights = ["big", "mid", "small", "tiny"], [45, 30, 20, 5]
    sessions = []
    for release in _drawn(rng, 3000):
        left = rng.random() < (0.3 if release == "next" else 0.05)
        sessions.append(_timeline(release, rng.choices(keys, weights)[0], end=30.0 if left else 60.0,
                                  figures=LEFT_IN_FIRST_TURN if left else FIGURES))
    breach = _judge(sessions).verdict("next", "stable")
    assert breach is not None and breach.signal == "left_early", breach
