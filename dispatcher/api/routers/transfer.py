"""`POST /sessions/{id}/transfer`: hand a live phone call to a person (docs/phone.md, "Handing a call to
a person"). For the key that started the session, or an admin key on the record (admin_access.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request

from dispatcher.api.admin_access import TRANSFER, reachable_id
from dispatcher.api.dependencies import app_state, identified, not_found
from dispatcher.api.schemas import ERRORS
from dispatcher.errors import ApiError
from dispatcher.phone.calls import PHONE_TRANSPORT
from dispatcher.phone.transfer_target import WARM, WARM_WHERE, TransferTarget, transfer_target
from dispatcher.sessions.ids import Caller

router = APIRouter(responses=ERRORS)


@router.post("/sessions/{session_id}/transfer", summary="Hand a live phone call to a person (cold or warm)")
async def transfer_session(
    request: Request, session_id: str, who: Annotated[Caller, Depends(identified)],
    to: Annotated[Any, Body(description="`+14155550100` (E.164) or `sip:desk@pbx.example.com`")] = None,
    mode: Annotated[Any, Body(description="`cold`, or `warm` (SIP trunk calls: the bot briefs the person)")] = "cold",
    summary: Annotated[Any, Body(description="warm only: what the bot says to the person (≤ 1,000 characters); "
                                 "left out, the bot's own briefing")] = None,
) -> dict[str, Any]:
    """Twilio (Telnyx, Plivo) rings `to` and connects the caller when they answer; a call through the SIP edge is handed
    over by a REFER to the caller's side, or where that is refused, the edge calls `to` through its trunk
    and bridges the two; a Daily dial-in call by Daily's `sipCallTransfer` (dispatcher/phone/daily_transfers.py).
    The call's stream to the bot ends and the session ends as `transferred` (its
    timeline's `transferred`, the `session.transferred` webhook). Any replica answers: the one holding
    the call's stream does the transfer. `warm` (a call through the SIP edge whose trunk has a termination_uri):
    the caller hears hold music while the person rings, the bot says `summary` (or its own briefing) to them,
    then the two are bridged; unanswered, the caller is back with the bot (409 `person_unanswered`).
    Refused before anything changes: 422 for a bad `to`, `mode` or `summary`, 409 for a session with no
    live Twilio, Telnyx, Plivo, SIP or Daily dial-in call (a WebRTC session, a Daily one that is no dial-in
    call, another carrier, a call over), a warm one elsewhere than the SIP edge (Twilio, Telnyx), or a SIP
    call that could be handed neither way (the code names why), 503 while the
    replicas' store cannot say where the call is. A 504 with `outcome: unknown` may have been done: it
    is never tried again."""
    state = app_state(request)
    target = transfer_target(to, mode, summary)  # a bad request is answered before any look-up
    reached = await reachable_id(request, session_id, who, TRANSFER, exists=state.sessions.ever_existed)
    answer = await state.phone.handing.transfer(reached, target)  # at whichever replica holds the call
    if answer is None:
        raise await _no_live_call(request, reached, target)
    return answer


async def _no_live_call(request: Request, session_id: str, target: TransferTarget) -> ApiError:
    """Why this session has no call to transfer here, said before anything changed."""
    session = await app_state(request).sessions.get(session_id)
    if session is None:
        return not_found(session_id)
    transport = session.machine.transport
    if transport != PHONE_TRANSPORT:
        where = (WARM_WHERE if target.mode == WARM else "transfers work on Twilio, Telnyx and Plivo media-stream "
                 "calls, Exotel Voicebot calls, calls through the SIP edge and Daily dial-in calls")
        return ApiError(409, "transfer_unsupported", f"a {transport or 'daily'} session has no phone line to hand "
                        f"over: {where}")
    if not session.machine.state.is_active:
        return ApiError(409, "call_over", "this session's call has ended")
    return ApiError(409, "no_live_call", "this session's call is not connected to the dispatcher (not yet, or "
                    "no longer): ask again once its stream is connected")
