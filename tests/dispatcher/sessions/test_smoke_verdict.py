"""A smoke session's verdict from the machine's own reports, in time order."""

from __future__ import annotations

from dispatcher.sessions.smoke_verdict import HEARD, verdict_of


def events(*kinds: str, **fields: object) -> list[dict[str, object]]:
    return [{"event": kind, "at": float(n), **fields} for n, kind in enumerate(kinds)]


def test_first_audio_after_the_caller_joined_passes() -> None:
    assert verdict_of(events("requested", "launched", "ready", "joined", "first_audio")) == HEARD


def test_first_audio_without_a_caller_is_no_verdict_yet_and_fails_at_the_deadline() -> None:
    assert verdict_of(events("requested", "ready", "first_audio")) is None
    late = verdict_of(events("requested", "ready", "first_audio"), overdue_after=120)
    assert late is not None and not late.passed
    assert late.reason == "no audio within 120 s: the bot was ready, but no caller joined"


def test_the_bots_own_error_is_the_reason() -> None:
    errored = verdict_of(events("ready", "joined", "error", detail="ValueError: bad key"))
    assert errored is not None and not errored.passed and "ValueError: bad key" in errored.reason
    ended = verdict_of([{"event": "joined", "at": 1.0},
                        {"event": "ended", "at": 2.0, "reason": "bot_failed", "detail": "Boom: on purpose"}])
    assert ended is not None and "bot_failed: Boom: on purpose" in ended.reason
    failed = verdict_of([{"event": "failed", "at": 1.0, "code": "provider_error", "message": "no capacity"}])
    assert failed is not None and failed.reason == "the session did not start: provider_error: no capacity"


def test_an_end_after_the_first_audio_does_not_undo_the_pass() -> None:
    assert verdict_of(events("joined", "first_audio", "ended", reason="bot_failed")) == HEARD


def test_a_machine_that_died_before_its_bot_said_anything_fails_at_once_with_the_providers_word() -> None:
    died = verdict_of([{"event": "requested", "at": 1.0}, {"event": "launched", "at": 1.1},
                       {"event": "machine_ended", "at": 1.5, "state": "failed",
                        "detail": "exit code 4: bot.py: no such file"}])
    assert died is not None and not died.passed
    assert died.reason == "the machine failed before a caller heard the bot (exit code 4: bot.py: no such file)"
