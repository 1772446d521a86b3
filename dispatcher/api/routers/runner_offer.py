"""`POST`/`PATCH /api/offer`: the dev runner's direct SmallWebRTC path, with no `/start` before it.

Clients configured with `webrtcUrl: ".../api/offer"` post their offer straight away; the runner
then starts a bot for it, with the offer's `requestData` as the bot's data. Here the offer starts
a session the same way (`POST /start` with that body), and the answer's `pc_id` carries the
session id (`<session_id>:<bot's pc_id>`), so a renegotiation or a trickled candidate finds its
session with no state in the dispatcher. Local only, like every offer route.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from dispatcher.api.dependencies import app_state, caller, identified
from dispatcher.api.routers.offers import offer_payload, signal
from dispatcher.api.schemas import ERRORS, CandidatesPatch, Offer
from dispatcher.errors import ApiError
from dispatcher.sessions.ids import Caller

SEPARATOR = ":"  # never in a session id (hex); the bot's own pc_id follows the first one

router = APIRouter(dependencies=[Depends(caller)], responses=ERRORS)


def _split(pc_id: str | None) -> tuple[str | None, str | None]:
    if pc_id is None or SEPARATOR not in pc_id:
        return None, pc_id
    session_id, bot_pc_id = pc_id.split(SEPARATOR, 1)
    return session_id, bot_pc_id


@router.post("/api/offer", summary="SmallWebRTC offer without /start: starts a session for it (local)")
async def direct_offer(
    request: Request, response: Response, offer: Offer, who: Annotated[Caller, Depends(identified)]
) -> dict[str, object]:
    state = app_state(request)
    if state.settings.machines != "local":
        # A cloud WebRTC client needs the start answer's iceConfig (its TURN credentials).
        raise ApiError(404, "no_signalling", "outside local mode, start with POST /start and offer to its session")
    payload = offer_payload(state, offer)
    session_id, bot_pc_id = _split(offer.pc_id)
    if session_id is None:
        if bot_pc_id is not None:
            raise ApiError(404, "unknown_pc_id", "this pc_id names no session; send the pc_id an answer gave you")
        await state.start_limit.check(who.id)
        body = payload.get("request_data", {})
        session = await state.sessions.start(
            caller=who, idempotency_key=None, body=body, wait=False, transport="webrtc"
        )
        session_id = session.machine.session_id
    payload["pc_id"] = bot_pc_id
    if bot_pc_id is None:
        payload.pop("pc_id")
    answer = await signal(request, session_id, "offer", payload)
    answer["pc_id"] = f"{session_id}{SEPARATOR}{answer.get('pc_id')}"
    response.headers["Location"] = f"/sessions/{session_id}"
    return answer


@router.patch("/api/offer", summary="Trickle ICE candidates for a session started by POST /api/offer (local)")
async def direct_candidates(request: Request, patch: CandidatesPatch) -> dict[str, object]:
    session_id, bot_pc_id = _split(patch.pc_id)
    if session_id is None or not bot_pc_id:
        raise ApiError(404, "unknown_pc_id", "this pc_id names no session; send the pc_id an answer gave you")
    return await signal(request, session_id, "ice", {**patch.model_dump(), "pc_id": bot_pc_id})
