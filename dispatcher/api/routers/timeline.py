"""`GET /sessions/{id}/timeline`: what happened to a session, for the key that started it (or an admin,
on the record: dispatcher/api/admin_access.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from dispatcher.api.admin_access import READ_TIMELINE, reachable_id
from dispatcher.api.dependencies import app_state, caller, identified, not_found
from dispatcher.api.schemas import ERRORS
from dispatcher.sessions.ids import Caller
from dispatcher.sessions.timeline import trace_id_of

router = APIRouter(dependencies=[Depends(caller)], responses=ERRORS)


@router.get("/sessions/{session_id}/timeline", summary="A session's events, oldest first")
async def get_timeline(
    request: Request, session_id: str, who: Annotated[Caller, Depends(identified)]
) -> dict[str, Any]:
    """`requested`, `claimed`/`launched`, `machine_started`, `ready`, `joined`, `first_audio`, `error`,
    `failed`, `telephony` (a SIP call's trunk and price), `sip_inbound` (an unpriced call a SIP edge started),
    `sip_ended` (a SIP call's end, as its edge told it), `stop_requested`, `ended`,
    `machine_ended` (the provider's word on its machine's end), `paced` (a call placed out with several
    regions: `by` whose turn of the pace it took, the home region's or this region's share): each with `at`
    (epoch seconds) and the
    replica that saw it.
    Kept a day at most (another client key, or an unknown or forgotten session: 404)."""
    state = app_state(request)
    events = await state.sessions.timeline.read(await reachable_id(request, session_id, who, READ_TIMELINE))
    if not events:
        raise not_found(session_id)
    return {"session_id": session_id, "trace_id": trace_id_of(events), "events": events}
