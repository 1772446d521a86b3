"""A session's SmallWebRTC signalling: the client's offer and its trickled candidates, sent to the
session's bot over its channel (dispatcher/channel/signalling.py), wherever that channel is.

Each is a span in the session's own trace (`session.offer`, `session.ice`: the wait for an early
offer's bot, the bot's answer), linked to the request's span (dispatcher/observability/tracing.py)."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Depends, Request

import dispatcher.observability.tracing as tracing
from dispatcher.api.dependencies import app_state, caller, identified, owned_id
from dispatcher.api.schemas import ERRORS, CandidatesPatch, Offer
from dispatcher.api.state import AppState
from dispatcher.channel.signalling import Kind
from dispatcher.errors import ApiError, Utf8JSONResponse
from dispatcher.sessions.session_signal import NO_SIGNALLING, signal_session

router = APIRouter(dependencies=[Depends(caller)], responses=ERRORS)


@router.post("/sessions/{session_id}/api/offer", summary="SmallWebRTC offer, sent to the session's bot (local)")
async def post_offer(request: Request, session_id: str, offer: Offer) -> Utf8JSONResponse:
    return Utf8JSONResponse(await signal(request, session_id, "offer", offer_payload(app_state(request), offer)))


@router.patch("/sessions/{session_id}/api/offer", summary="Trickle ICE candidates for the session's bot (local)")
async def patch_offer(request: Request, session_id: str, patch: CandidatesPatch) -> Utf8JSONResponse:
    return Utf8JSONResponse(await signal(request, session_id, "ice", patch.model_dump()))


def offer_payload(state: AppState, offer: Offer) -> dict[str, Any]:
    """What the bot gets: the offer, with Pipecat's `requestData` (or the runner's spelling) as
    `request_data`, which becomes the session's data as on Pipecat's runner."""
    payload = offer.model_dump(exclude_none=True, exclude={"requestData", "request_data"})
    data = offer.request_data if offer.request_data is not None else offer.requestData
    if data is not None:
        limit = state.settings.max_body_bytes
        if len(json.dumps(data, separators=(",", ":")).encode()) > limit:
            raise ApiError(413, "body_too_large", f"`requestData` exceeds {limit} bytes as JSON")
        payload["request_data"] = data
    return payload


async def signal(request: Request, session_id: str, kind: Kind, payload: dict[str, Any]) -> dict[str, Any]:
    state = app_state(request)
    if "webrtc" not in state.settings.transports:  # known before any wait: every bot joins a Daily room
        raise ApiError(404, "no_signalling", NO_SIGNALLING)
    deadline = time.monotonic() + state.settings.start_wait_seconds
    who = await identified(request)
    session_id = await owned_id(state, session_id, who)
    # Read only when spans leave the process: an offer is on the way to the caller's first audio.
    parent = None
    if tracing.exporting():
        parent = tracing.session_traceparent(await state.sessions.timeline.read(session_id))
    with tracing.in_session(f"session.{kind}", parent, **{"voicefleet.session.id": session_id}) as span:
        try:
            return await signal_session(state.sessions, state.channels, state.remote, session_id, kind, payload,
                                        deadline=deadline)
        except ApiError as exc:
            tracing.failed(span, exc.code)
            raise
