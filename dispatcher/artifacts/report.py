"""A session's report (`report.json` beside its recording): what the session was, how it went, and
what was and was not kept, and why. Built from the session's timeline and the upload's outcome."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TIMED = ("requested", "claimed", "launched", "machine_started", "ready", "joined", "first_audio", "ended")
NOT_BUILT = "not kept yet: voicefleet does not write it in this version"


def session_report(session_id: str, facts: Mapping[str, Any], events: list[dict[str, Any]],
                   recording: Mapping[str, Any], *, why: str, errors: list[str],
                   transcript: Mapping[str, Any] | None = None) -> dict[str, Any]:
    first: dict[str, dict[str, Any]] = {}
    for event in events:
        first.setdefault(str(event.get("event")), event)
    requested = first.get("requested", {}).get("at")
    timings = {name: first[name]["at"] for name in TIMED if isinstance(first.get(name, {}).get("at"), int | float)}
    ended = first.get("ended", {})
    report: dict[str, Any] = {
        "session_id": session_id,
        **dict(facts),
        "timings": timings,
        "seconds_from_request": {name: round(at - requested, 3) for name, at in timings.items()}
        if isinstance(requested, int | float) else {},
        "ended": {"how": why, "reason": ended.get("reason"), "detail": ended.get("detail"),
                  "exit_code": ended.get("exit_code")},
        "errors": [str(e.get("detail") or e.get("reason")) for e in events if e.get("event") == "error"][:20]
        + errors[:10],
        "recording": dict(recording),
        "transcript": dict(transcript) if transcript is not None else {"kept": False, "why": NOT_BUILT},
        "bot_logs": {"kept": False, "why": NOT_BUILT},
    }
    return report
