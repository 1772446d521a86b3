"""A session's report (`report.json` beside its recording): what the session was, how it went, what
it cost, and what was and was not kept, and why. Built from the session's timeline, the upload's
outcome, the bot's turns and log lines as they were kept, and the session's cost as the dispatcher
reckons it (dispatcher/sessions/cost.py, the same as `GET /sessions/{id}`'s `cost`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from dispatcher.observability.sip_end import sip_end_of
from dispatcher.observability.whatsapp_call import whatsapp_of

TIMED = ("requested", "claimed", "launched", "machine_started", "ready", "joined", "first_audio", "ended")
NOT_HANDED_OVER = "not handed over"
OBJECTS = ("recording.wav", "transcript.jsonl", "logs.jsonl")


def session_report(session_id: str, facts: Mapping[str, Any], events: list[dict[str, Any]],
                   recording: Mapping[str, Any], *, why: str, errors: list[str],
                   transcript: Mapping[str, Any] | None = None, turns: Sequence[Mapping[str, Any]] | None = None,
                   logs: Mapping[str, Any] | None = None, cost: Mapping[str, Any] | None = None) -> dict[str, Any]:
    first: dict[str, dict[str, Any]] = {}
    for event in events:
        first.setdefault(str(event.get("event")), event)
    requested = first.get("requested", {}).get("at")
    timings = {name: first[name]["at"] for name in TIMED if isinstance(first.get(name, {}).get("at"), int | float)}
    ended = first.get("ended", {})
    transcript = dict(transcript) if transcript is not None else {"kept": False, "why": NOT_HANDED_OVER}
    logs = dict(logs) if logs is not None else {"kept": False, "why": NOT_HANDED_OVER}
    report: dict[str, Any] = {
        "session_id": session_id,
        **dict(facts),
        "timings": timings,
        "seconds_from_request": {name: round(at - requested, 3) for name, at in timings.items()}
        if isinstance(requested, int | float) else {},
        "ended": {"how": why, "reason": ended.get("reason"), "detail": ended.get("detail"),
                  "exit_code": ended.get("exit_code"), "sip": sip_end_of(events),
                  "whatsapp": whatsapp_of(events)},
        "errors": [str(e.get("detail") or e.get("reason")) for e in events if e.get("event") == "error"][:20]
        + errors[:10],
        "cost": dict(cost) if cost is not None else {"known": False, "why": "not reckoned"},
        "turns": turn_latencies(turns) if turns is not None else {"known": False, "why": transcript.get("why")},
        "recording": dict(recording),
        "transcript": transcript,
        "bot_logs": logs,
    }
    report["kept"] = kept_objects(report)
    return report


def turn_latencies(turns: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Each bot turn's latency (the caller's end of speech → the bot's first audio, seconds), and
    their p50 and p95 (nearest rank: a latency that happened, never one between two)."""
    answered = [{"start": t.get("start"), "latency": t["latency"], "interrupted": bool(t.get("interrupted"))}
                for t in turns if t.get("who") == "bot" and isinstance(t.get("latency"), int | float)]
    ordered = sorted(float(t["latency"]) for t in answered)
    return {"bot_turns": sum(1 for t in turns if t.get("who") == "bot"), "answered": len(answered),
            "p50": _rank(ordered, 50), "p95": _rank(ordered, 95), "latencies": answered}


def _rank(ordered: list[float], percent: int) -> float | None:
    if not ordered:
        return None
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def kept_objects(report: Mapping[str, Any]) -> dict[str, Any]:
    """Each object a session may keep: True, or why it was not kept (`report.json` is this report)."""
    recording = report["recording"]
    sections = {"recording.wav": {"kept": recording.get("status") in ("complete", "partial"),
                                  "why": recording.get("why")},
                "transcript.jsonl": report["transcript"], "logs.jsonl": report["bot_logs"]}
    return {name: True if sections[name].get("kept") else str(sections[name].get("why") or "not kept")
            for name in OBJECTS}
