"""The automatic rollback (dispatcher/sessions/release_watch.py) never judges an eval's session: the
real judge, the real traffic and timelines as the dispatcher records them. An eval runs the key's
configured release or the stable one (not pinned by its start), and its failures are planted or
hunted on purpose: counted, they would roll back a healthy canary or hide a broken one."""

from __future__ import annotations

from pathlib import Path

from tests.dispatcher.sessions.test_release_watch_abuse import Timeline, judged, session


def evaluated(release: str, chosen_by: str, *, lasted: float, reason: str = "peer_disconnected") -> Timeline:
    """An eval's session: its start's `requested` event says `eval: true`."""
    events = session(release, chosen_by, lasted=lasted, reason=reason)
    events[0] = {**events[0], "eval": True}
    return events


async def test_failing_eval_sessions_on_a_canary_do_not_move_its_health_where_failing_callers_do(
        tmp_path: Path) -> None:
    customers = [session("stable", "weight", lasted=120) for _ in range(300)]
    customers += [session("next", "weight", lasted=120) for _ in range(30)]  # the canary serves its callers well
    # A key configured to run the canary: its evals' planted faults, then the same failures from its callers.
    evals = [evaluated("next", "key", lasted=0.5, reason="bot_failed") for _ in range(30)]
    callers = [session("next", "key", lasted=0.5, reason="bot_failed") for _ in range(30)]
    assert await judged(tmp_path, customers + evals) == {"stable": 90, "next": 10}
    assert await judged(tmp_path, customers + callers) == {"stable": 100, "next": 0}


async def test_failing_eval_sessions_on_the_stable_release_do_not_hide_a_broken_canary(tmp_path: Path) -> None:
    customers = [session("stable", "weight", lasted=120) for _ in range(100)]
    evals = [evaluated("stable", "stable", lasted=0.5, reason="bot_failed") for _ in range(2000)]
    broken = [session("next", "weight", lasted=0.5, reason="bot_failed") for _ in range(30)]
    assert await judged(tmp_path, customers + evals + broken) == {"stable": 100, "next": 0}
