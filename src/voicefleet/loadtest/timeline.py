"""The dispatcher's own figures for a session, from its timeline (`GET /sessions/{id}/timeline`):
seconds from `requested` to the bot's `joined` (its caller connected), its `ready` and its
`first_audio`, each on the replica's
clock. Differences of one clock, so the caller's clock need not agree with the dispatcher's."""

from __future__ import annotations

from typing import Any

MEASURED = ("joined", "ready", "first_audio")


def durations(events: list[dict[str, Any]]) -> dict[str, float]:
    """`{"joined": s, "ready": s, "first_audio": s}` for the events the timeline has, from the first `requested`."""
    at: dict[str, float] = {}
    for event in events:
        name, moment = event.get("event"), event.get("at")
        if isinstance(name, str) and isinstance(moment, (int, float)) and name not in at:
            at[name] = float(moment)
    if "requested" not in at:
        return {}
    return {name: round(at[name] - at["requested"], 3) for name in MEASURED if name in at}


def end_reason(events: list[dict[str, Any]]) -> str | None:
    """Why the bot says its session ended (its `ended` report's reason and detail), if it has."""
    ended = next((e for e in events if e.get("event") == "ended"), None)
    if ended is None:
        return None
    return ": ".join(str(ended[k]) for k in ("reason", "detail") if ended.get(k))
