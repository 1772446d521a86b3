"""A hostile review's cases of the release judge's reading of a phone call's clean-up stop (`call_ended_at`,
dispatcher/sessions/release_outcome.py) and of a placed call's clean-up: the caller's hang-up at boot, two
replicas' clocks, a callee who never answered."""

from __future__ import annotations

import pytest

from dispatcher.sessions.release_outcome import outcome_of
from tests.dispatcher.sessions.test_release_outcomes import REQUESTED, timeline


def test_a_phone_caller_who_hangs_up_while_the_bot_boots_is_no_failed_start_of_its_release() -> None:
    # The caller hung up 2 s into a cold start; the relay's end waited for the start, then stopped the machine.
    # Before the clean-up stop carried call_ended_at this was a stop before ready, judged by the caller's wait
    # (docs/releases.md: under the stable's p95, it says nothing of the release's failures).
    outcome = outcome_of(timeline(REQUESTED, ("launched", 100.1, {}),
                                  ("stop_requested", 103.0, {"machine_running": True, "call_ended_at": 102.0}),
                                  ("machine_ended", 103.2, {"state": "ended", "detail": "stopped"})),
                         gave_up_after=9.0)
    assert outcome is not None
    assert outcome.failure is None, f"a caller's hang-up 2 s into a boot counted as {outcome.failure!r}"
    assert outcome.ready_censored  # the bot was not ready by then: a time to ready of at least the wait


def test_a_booting_bot_stopped_after_its_caller_hung_up_is_no_early_end() -> None:
    outcome = outcome_of(timeline(REQUESTED, ("launched", 100.1, {}),
                                  ("stop_requested", 103.0, {"machine_running": True, "call_ended_at": 102.0}),
                                  ("ended", 103.1, {"reason": "signal"}),
                                  ("machine_ended", 103.2, {"state": "ended", "detail": "stopped"})),
                         gave_up_after=9.0)
    assert outcome is not None and outcome.failure is None, outcome


def test_a_call_whose_media_ended_as_its_bot_joined_never_lasts_less_than_nothing() -> None:
    outcome = outcome_of(timeline(REQUESTED, ("claimed", 100.1, {}), ("ready", 100.2, {}), ("joined", 100.3, {}),
                                  ("stop_requested", 105.4, {"machine_running": True, "call_ended_at": 100.25}),
                                  ("ended", 105.6, {"reason": "pipeline_finished"})))
    assert outcome is not None
    assert outcome.ended_within_seconds is None or outcome.ended_within_seconds >= 0, outcome.ended_within_seconds


@pytest.mark.parametrize("outcome_name", ["busy", "rejected", "not_placed"])
def test_a_placed_call_its_callee_did_not_answer_is_no_early_end_of_the_release(outcome_name: str) -> None:
    outcome = outcome_of(timeline(REQUESTED, ("claimed", 100.1, {}), ("ready", 100.5, {}),
                                  ("call_outcome", 102.0, {"outcome": outcome_name}),
                                  ("ended", 102.0, {"reason": outcome_name}),
                                  ("stop_requested", 102.1, {"machine_running": True}),
                                  ("machine_ended", 102.3, {"state": "ended", "detail": "stopped"})))
    assert outcome is not None and outcome.failure is None, f"{outcome_name}: {outcome.failure!r}"
