"""Why a call ended before its scenario did, as the dispatcher recorded it: a turn under which the bot
hung up or crashed fails with that reason, and the turns after it are not taken. Shared by the WebRTC
caller (call.py) and the phone caller (phone_call.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from voicefleet.evals.outcome import Target, TurnResult
from voicefleet.loadtest.session_calls import json_object, session_url

OVER = ("ended", "failed")
# The caller saw the hang-up → the dispatcher has the session's end: the bot host reports it as the
# bot exits, and a crashed bot's error comes with that report. Generous for a loaded machine.
END_WAIT = 20.0
POLL_SECONDS = 0.5
NOT_TAKEN = "not taken: the call had ended"


async def ended_reason(target: Target, http: httpx.AsyncClient, session_id: str | None, turn: int, *,
                       hung_up: bool) -> str | None:
    """A failed turn's reason when the call ended under it: `the bot's session failed: <its error>` when
    the session recorded one, else `the bot ended the call at turn N`; None when the caller saw no end
    and the session is still up (the turn failed on its own). Waits for the session's end only when
    the caller saw the call end."""
    session = await _session_once_over(target, http, session_id, END_WAIT if hung_up else 0.0)
    over = session.get("status") in OVER
    if not (hung_up or over):
        return None
    if over and (error := session.get("error") or (session.get("status") == "failed" and session.get("detail"))):
        return f"the bot's session failed: {error}"[:500]
    return f"the bot ended the call at turn {turn}"


def not_taken(said: str) -> TurnResult:
    return TurnResult(said, "", None, [NOT_TAKEN])


async def _session_once_over(target: Target, http: httpx.AsyncClient, session_id: str | None,
                             wait: float) -> dict[str, Any]:
    """`GET /sessions/{id}` once the session is over, or as it is after `wait` seconds ({} unreadable)."""
    if session_id is None:
        return {}
    deadline = time.monotonic() + wait
    while True:
        try:
            response = await http.get(session_url(target.base_url, session_id), headers=target.headers())
            session = json_object(response)
        except httpx.TransportError:
            session = {}
        if session.get("status") in OVER or time.monotonic() >= deadline:
            return session
        await asyncio.sleep(POLL_SECONDS)
