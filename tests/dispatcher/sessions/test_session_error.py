"""The session's `error`: the bot's first pipeline error (the cause), and how many followed it."""

from __future__ import annotations

from dispatcher.sessions.timeline import session_error


def error(detail: str, reason: str = "error") -> dict[str, object]:
    return {"event": "error", "reason": reason, "detail": detail}


def test_the_first_error_is_the_cause_and_the_ones_after_it_are_counted():
    events = [{"event": "requested"}, error("DeepgramSTTService#0: connection error: [Errno -2] Name or service "
                                            "not known"), {"event": "ready"},
              error("CartesiaTTSService#0: TTS context completed with no audio"), error("again")]
    assert session_error(events) == ("DeepgramSTTService#0: connection error: [Errno -2] Name or service not known "
                                     "(then 2 more errors: see the timeline)")
    assert session_error(events[:3]) == "DeepgramSTTService#0: connection error: [Errno -2] Name or service not known"
    assert session_error(events[:4]).endswith("(then 1 more error: see the timeline)")


def test_no_error_is_none_and_an_error_without_detail_says_its_reason():
    assert session_error([{"event": "requested"}, {"event": "ended"}]) is None
    assert session_error([{"event": "error", "reason": "unusable"}]) == "unusable"
