"""How `voicefleet session ID` shows the call's conversation, from the figures its bot host reported
with the session's end (the `ended` event's `conversation`: docs/releases.md, "The conversation"):

    CONVERSATION  3 caller turns, none unanswered, answered in 0.9 s (median; slowest 1.4 s), 1 of 4 bot turns cut off
"""

from __future__ import annotations

from typing import Any


def conversation_line(events: list[dict[str, Any]]) -> str | None:
    """One line for the session's facts; None when its end carried no figures."""
    ended = next((e for e in events if e.get("event") == "ended" and isinstance(e.get("conversation"), dict)), None)
    if ended is None:
        return None
    figures: dict[str, Any] = ended["conversation"]
    turns, unanswered = figures.get("caller_turns", 0), figures.get("unanswered", 0)
    latencies = sorted(v for v in figures.get("latencies", []) if isinstance(v, int | float))
    parts = [f"{turns} caller turn{'' if turns == 1 else 's'}", f"{unanswered or 'none'} unanswered"]
    if latencies:
        parts.append(f"answered in {latencies[len(latencies) // 2]:.1f} s (median; slowest {latencies[-1]:.1f} s)")
    parts.append(f"{figures.get('cut_off', 0)} of {figures.get('bot_turns', 0)} bot turns cut off")
    if figures.get("left_in_first_turn"):
        parts.append("the caller left within the first turn")
    return ", ".join(parts)
