"""`GET /sessions/{id}/timeline`: what happened to a session, for the key that started it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from dispatcher.api.dependencies import app_state, caller, identified, not_found, owned_id
from dispatcher.api.schemas import ERRORS
from dispatcher.sessions.ids import Caller
from dispatcher.sessions.timeline import trace_id_of

router = APIRouter(dependencies=[Depends(caller)], responses=ERRORS)


@router.get("/sessions/{session_id}/timeline", summary="A session's events, oldest first")
async def get_timeline(
    request: Request, session_id: str, who: Annotated[Caller, Depends(identified)]
) -> dict[str, Any]:
    """`requested`, `claimed`/`launched`, `machine_started`, `ready`, `joined`, `first_audio`, `error`,
    `failed`, `stop_requested`, `ended`, `machine_ended` (the provider's word on its machine's end): each with
    `at` (epoch seconds) and the replica that saw it.
    Kept a day at most (another key, or an unknown or forgotten session: 404)."""
    state = app_state(request)
    events = await state.sessions.timeline.read(await owned_id(state, session_id, who))
    if not events:
        raise not_found(session_id)
    return {"session_id": session_id, "trace_id": trace_id_of(events), "events": events}
