"""A placed call's outcome, recorded one way whatever placed it (a SIP trunk, Twilio's Calls API): a
`call_outcome` timeline event; a call not answered also ends its session, with the outcome as the
`ended` reason (the `session.ended` webhook carries it), and stops it if it ran. A session that never
ran (its stream never opened, as when Twilio's callee never answered) has its timeline opened first,
since only a `requested` opens one."""

from __future__ import annotations

from typing import Any

from dispatcher.api.state import AppState

ANSWERED = "answered"


async def record_outcome(state: AppState, session_id: str, outcome: str, **fields: Any) -> None:
    """Noted once: the same outcome told again (the SIP edge tries its POST again when no answer came in time, a
    carrier's callback retried), at this replica or another, even at once, notes nothing more
    (dispatcher/sessions/noted_once.py), so its `ended` takes no room its bot's own `ended` needs (a timeline
    keeps a few of that kind: dispatcher/store/timelines.py); a session still running is stopped."""
    timeline = state.sessions.timeline
    events = await open_timeline(state, session_id, **fields)
    told = any(e.get("event") == "call_outcome" and e.get("outcome") == outcome for e in events) \
        or not await state.sessions.noted_once.first(f"call_outcome={outcome}", session_id)
    if not told:
        timeline.note(session_id, "call_outcome", outcome=outcome, **fields)
    if outcome == ANSWERED:
        return
    if not told:
        timeline.note(session_id, "ended", reason=outcome, **fields)
    if await state.sessions.get(session_id) is None:
        await timeline.settled()  # before the answer: a retry of the call's Idempotency-Key reads it
    else:
        await state.sessions.stop(session_id)


async def open_timeline(state: AppState, session_id: str, **fields: Any) -> list[dict[str, Any]]:
    """The call's timeline opened (with a `requested`) if nothing opened it yet: a call placed through
    Twilio is known before its stream opens the session, and its callbacks may come first. Its events as read
    (none: it was just opened)."""
    timeline = state.sessions.timeline
    events = await timeline.read(session_id)
    if not events:
        timeline.note(session_id, "requested", **_opening(fields))
        await timeline.settled()
    return events


async def ended_unstarted(state: AppState, session_id: str, **fields: Any) -> None:
    """A call whose session never ran (its stream never opened, nor was the call placed): the session's
    timeline is opened here, then ended `not_placed`, in that order, before the answer, so a retry of the
    same Idempotency-Key and the `session.ended` webhook see it."""
    timeline = state.sessions.timeline
    events = await open_timeline(state, session_id, **fields)
    if any(e.get("event") == "ended" and e.get("reason") == "not_placed" for e in events):
        return  # told again (a retried POST): its end is noted already
    timeline.note(session_id, "ended", reason="not_placed", **fields)
    await timeline.settled()


def _opening(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: fields[key] for key in ("trunk", "carrier", "call_sid") if fields.get(key) is not None}
