"""What the tests of calls placed through a carrier's Calls API read back (test_twilio_dial.py,
test_telnyx_dial.py): the session's timeline, once written, and its outcomes."""

from __future__ import annotations

from typing import Any

import httpx


async def events(api: httpx.AsyncClient, session_id: str) -> list[dict[str, Any]]:
    state = api.app.state.voicefleet  # type: ignore[attr-defined]
    await state.sessions.timeline.settled()
    return list(await state.sessions.timeline.read(session_id))


def outcomes(timeline: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(e["event"], e.get("outcome") or e.get("reason")) for e in timeline
            if e["event"] in ("call_outcome", "ended")]
