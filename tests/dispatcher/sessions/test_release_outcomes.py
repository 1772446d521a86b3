"""A session's timeline as one outcome for its release's health."""

from __future__ import annotations

from typing import Any

from dispatcher.sessions.release_outcome import outcome_of


def timeline(*events: tuple[str, float, dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"event": name, "at": at, **fields} for name, at, fields in events]


REQUESTED = ("requested", 100.0, {"release": "next"})


def test_a_bot_that_raised_is_a_bot_error_of_its_release() -> None:
    outcome = outcome_of(timeline(REQUESTED, ("launched", 100.1, {}), ("ready", 101.5, {}),
                                  ("ended", 101.6, {"reason": "bot_failed", "exit_code": 4})))
    assert outcome is not None and outcome.release == "next" and outcome.failure == "bot error"
    assert outcome.ready_seconds == 1.5


def test_a_caller_who_never_connected_is_no_fault_of_the_release() -> None:
    outcome = outcome_of(timeline(REQUESTED, ("launched", 100.1, {}), ("ready", 101.0, {}),
                                  ("ended", 108.0, {"reason": "connect_timeout", "exit_code": 3})))
    assert outcome is not None and outcome.failure is None


def test_a_start_that_failed_before_a_machine_is_a_failed_start() -> None:
    outcome = outcome_of(timeline(REQUESTED, ("failed", 100.2, {"code": "provider_error"})))
    assert outcome is not None and outcome.failure == "failed to start"


def test_a_session_its_bot_ended_within_seconds_of_joining_failed_its_caller_and_first_audio_counts_from_joining(
) -> None:
    outcome = outcome_of(timeline(REQUESTED, ("claimed", 100.1, {}), ("ready", 100.3, {}), ("joined", 102.0, {}),
                                  ("first_audio", 102.8, {}), ("ended", 104.0, {"reason": "pipeline_finished"})))
    assert outcome is not None and outcome.failure == "ended early"
    assert round(outcome.first_audio_seconds or 0, 3) == 0.8


def _hung_up(reason: str, conversation: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """A caller who joined a ready bot, heard its first audio, and the session ended two seconds in."""
    ended: dict[str, Any] = {"reason": reason, **({"conversation": conversation} if conversation else {})}
    return timeline(REQUESTED, ("launched", 100.1, {}), ("ready", 101.0, {}), ("joined", 101.2, {}),
                    ("first_audio", 101.5, {}), ("ended", 103.2, ended), ("machine_ended", 103.4, {"state": "ended"}))


FIRST_TURN = {"caller_turns": 0, "unanswered": 0, "bot_turns": 1, "cut_off": 0, "latencies": [],
              "left_in_first_turn": True}


def test_a_caller_who_hangs_up_over_the_transport_in_the_first_turn_is_no_early_end_of_its_release() -> None:
    # WebRTC's peer gone, Daily's participant left (a phone caller's hang-up reaches the bot as the peer
    # leaving): the caller's choice, whether or not the bot host reported the conversation's figures.
    for reason in ("peer_disconnected", "participant_left"):
        for figures in (None, FIRST_TURN):
            outcome = outcome_of(_hung_up(reason, figures))
            assert outcome is not None and outcome.failure is None, (reason, figures)
            assert outcome.ended_within_seconds is None and outcome.first_audio_seconds is not None
            assert figures is None or (outcome.talk is not None and outcome.talk.left_early)


def _phone_call(hung_up_at: float, conversation: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """A phone call whose bot reported its end as its pipeline finishing (as it does for its caller's
    hang-up and for its own), two seconds in, and the relay's word that the caller hung up."""
    events = _hung_up("pipeline_finished", conversation)
    events.append({"event": "caller_hung_up", "at": hung_up_at, "how": "stop", "carrier": "twilio"})
    return sorted(events, key=lambda e: e["at"])


def test_a_phone_call_ended_within_seconds_is_an_early_end_whoever_the_relay_saw_hang_up_first() -> None:
    """Pipecat's serializers hang up through the carrier's API before they close the stream, so the
    carrier's stop (`caller_hung_up`) comes first for the bot's own end too: it cannot excuse one."""
    for hung_up_at in (103.1, 103.3):  # the carrier's stop before the bot's end, and after it
        for figures in (None, FIRST_TURN):
            outcome = outcome_of(_phone_call(hung_up_at, figures))
            assert outcome is not None and outcome.failure == "ended early", (hung_up_at, figures)


def test_calls_no_key_asked_for_are_no_one_keys_sessions() -> None:
    """Every keyless phone call runs as the phone path's one internal caller: counted as one key, a
    fault on the phone would be left out of the verdict as that key's doing (releases/one_key.py)."""
    keyed_events = [dict(e, caller_id="phone") if e["event"] == "requested" else e for e in _phone_call(103.1)]
    internal = [dict(e, caller_internal=True) if e["event"] == "requested" else e for e in keyed_events]
    keyed, phone = outcome_of(keyed_events), outcome_of(internal)
    assert keyed is not None and phone is not None
    assert keyed.key is not None and phone.key is None


def test_the_bots_own_early_end_still_counts_however_its_caller_left() -> None:
    for reason, failure in (("error", "bot error"), ("bot_failed", "bot error"), ("pipeline_finished", "ended early")):
        outcome = outcome_of(_hung_up(reason, FIRST_TURN))
        assert outcome is not None and outcome.failure == failure, reason
    exited = [e for e in _hung_up("peer_disconnected") if e["event"] != "ended"]  # the bot's process died
    exited[-1]["state"] = "failed"
    outcome = outcome_of(exited)
    assert outcome is not None and outcome.failure == "bot error"


def test_a_hang_up_after_the_first_exchange_was_over_is_still_an_early_end() -> None:
    exchanged = {**FIRST_TURN, "caller_turns": 1, "bot_turns": 2, "latencies": [0.4], "left_in_first_turn": False}
    outcome = outcome_of(_hung_up("peer_disconnected", exchanged))
    assert outcome is not None and outcome.failure == "ended early"


def test_the_bots_own_close_before_it_answered_anyone_is_its_failure_and_its_goodbye_is_not() -> None:
    """`bot_closed` is the bot's own code: before any answer (a caller who spoke, or no word of its
    own) it is the bot's failure, whatever the host's figures say of the caller; after an answered
    turn it is the bot's designed goodbye, judged as any end (here long after joining)."""
    unanswered = {**FIRST_TURN, "caller_turns": 1, "bot_turns": 0}
    for figures in (unanswered, {**unanswered, "caller_turns": 0}, {**unanswered, "left_in_first_turn": False}):
        outcome = outcome_of(_hung_up("bot_closed", figures))
        assert outcome is not None and outcome.failure == "bot error", figures
    exchanged = {**FIRST_TURN, "caller_turns": 2, "bot_turns": 3, "latencies": [0.5, 0.6],
                 "left_in_first_turn": False}
    goodbye = [dict(e, at=130.0) if e["event"] in ("ended", "machine_ended") else e
               for e in _hung_up("bot_closed", exchanged)]
    announced = [dict(e, at=130.0) if e["event"] in ("ended", "machine_ended") else e
                 for e in _hung_up("bot_closed", {**FIRST_TURN, "left_in_first_turn": False})]
    for events in (goodbye, announced):
        outcome = outcome_of(events)
        assert outcome is not None and outcome.failure is None


def test_a_timeline_without_a_release_is_not_judged() -> None:
    assert outcome_of(timeline(("requested", 1.0, {}), ("ended", 9.0, {}))) is None


def test_a_pinned_session_is_not_judged_so_a_client_cannot_sink_or_hide_a_canary() -> None:
    pinned = ("requested", 100.0, {"release": "next", "release_chosen_by": "pinned"})
    assert outcome_of(timeline(pinned, ("launched", 100.1, {}), ("ended", 101.0, {"reason": "bot_failed"}))) is None
    keyed = ("requested", 100.0, {"release": "next", "release_chosen_by": "key"})
    assert outcome_of(timeline(keyed, ("launched", 100.1, {}), ("ended", 101.0, {"reason": "bot_failed"}))) is not None


def test_a_machine_that_died_before_its_bot_was_ready_is_a_failed_start() -> None:
    crashed = outcome_of(timeline(REQUESTED, ("launched", 100.1, {}),
                                  ("machine_ended", 100.9, {"state": "failed", "detail": "exit code 1"})))
    assert crashed is not None and crashed.failure == "failed to start"
    never_served = outcome_of(timeline(REQUESTED, ("launched", 100.1, {}),
                                       ("machine_ended", 120.0, {"state": "ended", "detail": "exit code 0"})))
    assert never_served is not None and never_served.failure == "failed to start"


def test_a_machine_that_failed_after_its_bot_was_ready_without_a_word_is_a_bot_error() -> None:
    outcome = outcome_of(timeline(REQUESTED, ("launched", 100.1, {}), ("ready", 101.0, {}), ("joined", 102.0, {}),
                                  ("machine_ended", 160.0, {"state": "failed", "detail": "killed by SIGKILL"})))
    assert outcome is not None and outcome.failure == "bot error" and outcome.ended_within_seconds == 58.0


def test_the_bots_own_account_or_the_callers_stop_outweighs_the_machines_end() -> None:
    reported = outcome_of(timeline(REQUESTED, ("launched", 100.1, {}), ("ready", 101.0, {}),
                                   ("ended", 108.0, {"reason": "connect_timeout", "exit_code": 3}),
                                   ("machine_ended", 108.2, {"state": "failed", "detail": "exit code 3"})))
    assert reported is not None and reported.failure is None
    stopped = outcome_of(timeline(REQUESTED, ("launched", 100.1, {}), ("stop_requested", 100.5, {}),
                                  ("machine_ended", 100.7, {"state": "ended", "detail": "stopped"})), gave_up_after=5.0)
    # Stopped at once: nothing of its bot's failures, for it or against it; its bot not ready by then.
    assert stopped is not None and stopped.failure is None and stopped.ready_censored
    assert stopped.ready_seconds is not None and round(stopped.ready_seconds, 3) == 0.5


def test_a_machine_that_failed_before_its_callers_stop_is_a_bot_error() -> None:
    """A canary's bot crashed (no report of its own; the provider shows the machine failed), then its
    caller's client stopped the session as the call went dead: the stop of a machine already over is
    not what ended it. Whether the crash was written before the stop, or first seen by the stop's own
    read and written after it, the stop says the machine no longer ran."""
    began = (REQUESTED, ("launched", 100.5, {}), ("ready", 104.0, {}), ("joined", 105.0, {}))
    crashed = ("machine_ended", 120.0, {"state": "failed", "detail": "exit code 1"})
    seen_by_the_stop = ("machine_ended", 122.4, {"state": "failed", "detail": "exit code 1"})
    for events in ((*began, crashed, ("stop_requested", 122.0, {"machine_running": False})),
                   (*began, ("stop_requested", 122.0, {"machine_running": False}), seen_by_the_stop),
                   (*began, crashed, ("stop_requested", 122.0, {}))):  # a stop written before it said
        outcome = outcome_of(timeline(*events))
        assert outcome is not None and outcome.failure == "bot error", events
    # A stop of the machine while it ran is what ended it, whenever its end was written.
    running = outcome_of(timeline(*began, ("stop_requested", 122.0, {"machine_running": True}), seen_by_the_stop))
    assert running is not None and running.failure is None


def test_a_caller_who_stops_a_ready_bot_at_once_is_no_early_end_of_its_release() -> None:
    # The caller's own hang-up (DELETE) a second after ready: its choice, not its bot's failure.
    stopped = outcome_of(timeline(REQUESTED, ("claimed", 100.1, {}), ("ready", 101.2, {}), ("joined", 101.3, {}),
                                  ("stop_requested", 101.9, {}), ("ended", 101.96, {"reason": "signal"}),
                                  ("machine_ended", 103.6, {"state": "ended", "detail": "stopped"})),
                         gave_up_after=5.0)
    assert stopped is not None and stopped.failure is None and stopped.ready_seconds is not None
    # The same session ended by its bot before any stop is a failure of the release.
    by_itself = outcome_of(timeline(REQUESTED, ("claimed", 100.1, {}), ("ready", 101.2, {}), ("joined", 101.3, {}),
                                    ("ended", 101.96, {"reason": "pipeline_finished"}), ("stop_requested", 102.5, {})),
                           gave_up_after=5.0)
    assert by_itself is not None and by_itself.failure == "ended early"


def test_a_phone_bots_own_hang_up_reported_after_the_calls_clean_up_stop_is_still_its_early_end() -> None:
    # The bot hung up 1.2 s into its call; on a busy machine its report came after the relay's clean-up
    # stop (which waits 5 s for it). That stop is no caller's: the call ended when its media did.
    late = outcome_of(timeline(REQUESTED, ("claimed", 100.1, {}), ("ready", 100.2, {}), ("joined", 100.3, {}),
                               ("stop_requested", 106.6, {"machine_running": True, "call_ended_at": 101.5}),
                               ("ended", 107.9, {"reason": "signal"}),
                               ("machine_ended", 108.0, {"state": "ended", "detail": "stopped"})))
    assert late is not None and late.failure == "ended early"
    assert late.ended_within_seconds is not None and round(late.ended_within_seconds, 3) == 1.2
    # A bot never heard from, its machine ended by the clean-up: the same early end.
    unheard = outcome_of(timeline(REQUESTED, ("claimed", 100.1, {}), ("ready", 100.2, {}), ("joined", 100.3, {}),
                                  ("stop_requested", 106.6, {"machine_running": True, "call_ended_at": 101.5}),
                                  ("machine_ended", 108.0, {"state": "ended", "detail": "stopped"})))
    assert unheard is not None and unheard.failure == "ended early"
    # A call that went on for a minute is no early end, whenever its report came.
    long = outcome_of(timeline(REQUESTED, ("claimed", 100.1, {}), ("ready", 100.2, {}), ("joined", 100.3, {}),
                               ("stop_requested", 166.6, {"machine_running": True, "call_ended_at": 161.5}),
                               ("ended", 167.9, {"reason": "pipeline_finished"})))
    assert long is not None and long.failure is None


def test_a_callers_own_stop_still_excuses_the_end_when_a_clean_up_stop_follows() -> None:
    stopped = outcome_of(timeline(REQUESTED, ("claimed", 100.1, {}), ("ready", 100.2, {}), ("joined", 100.3, {}),
                                  ("stop_requested", 101.0, {"machine_running": True}),
                                  ("stop_requested", 101.2, {"machine_running": True, "call_ended_at": 101.1}),
                                  ("ended", 101.3, {"reason": "signal"})))
    assert stopped is not None and stopped.failure is None


def test_a_caller_who_gave_up_on_a_bot_never_ready_after_the_bound_is_a_failed_start_censored_at_its_wait() -> None:
    hung = outcome_of(timeline(REQUESTED, ("launched", 104.2, {}), ("stop_requested", 118.1, {}),
                               ("machine_ended", 118.3, {"state": "ended", "detail": "stopped"})), gave_up_after=9.0)
    assert hung is not None and hung.failure == "failed to start"
    assert hung.ready_seconds is not None and round(hung.ready_seconds, 3) == 18.1 and hung.ready_censored
    sooner = outcome_of(timeline(REQUESTED, ("launched", 104.2, {}), ("stop_requested", 108.1, {}),
                                 ("machine_ended", 108.3, {"state": "ended", "detail": "stopped"})), gave_up_after=9.0)
    # Within what the stable release takes: no failure, a time to ready of at least its wait.
    assert sooner is not None and sooner.failure is None and sooner.ready_censored and not sooner.warm
    assert sooner.ready_seconds is not None and round(sooner.ready_seconds, 3) == 8.1


def test_the_callers_id_is_kept_with_its_outcome() -> None:
    requested = ("requested", 100.0, {"release": "next", "caller_id": "0123456789abcdef"})
    outcome = outcome_of(timeline(requested, ("launched", 100.1, {}), ("ready", 101.0, {}), ("ended", 130.0, {})))
    assert outcome is not None and outcome.key == "0123456789abcdef"
