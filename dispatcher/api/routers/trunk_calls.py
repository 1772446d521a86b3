"""`POST /calls`: a call placed through a SIP trunk (docs/sip.md#outbound-calls) or a carrier's Calls API
(Twilio's, Telnyx's TeXML: docs/phone.md#calling-out), and the SIP edge's routes for it (each edge's own
credential, derived from `SIP_EDGE_SECRET`; never a client's key): the session's status, the outcome, an
answered call's SIP end (who hung up, its answered seconds), a bridged transfer's person's leg (answered,
ended), which the session's telephony line prices, and a warm transfer's steps
(dispatcher/api/warm_briefing.py): each checked at the edge holding the call, a spilled inbound call's transfer
reports relayed to the region holding it (dispatcher/api/edge_reports.py). The carriers' callbacks:
dispatcher/api/routers/twilio_dial.py, telnyx_dial.py.

The call is placed by dispatcher/api/call_order.py (a campaign's rows are placed there too). The edge
opens its stream, so its bot is claimed and joins before the INVITE goes out; the far end's answer comes
back as a `call_outcome` timeline event, and a call that was not answered ends its session with the
outcome as the `ended` reason (the `session.ended` webhook carries it). A call never handed over is ended
the same way, with `not_placed`: none is left open."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response

from dispatcher.api.call_order import order_call
from dispatcher.api.call_outcomes import ended_unstarted, record_outcome
from dispatcher.api.call_schemas import BridgedLeg, CallOut, CallOutcome, CallRequest
from dispatcher.api.dependencies import app_state, not_found
from dispatcher.api.edge_reports import relayed_report, reporting_edge
from dispatcher.api.routers.sessions import authenticated
from dispatcher.api.routers.sip_end import SipEnd
from dispatcher.api.schemas import ERRORS
from dispatcher.api.warm_briefing import WarmStep, tell_bot, under_way
from dispatcher.errors import ApiError
from dispatcher.observability.sip_end import SIP_ENDED
from dispatcher.phone.invite_spacing import HOLD_SECONDS
from dispatcher.sessions.ids import Caller
from dispatcher.usage.telephony_cost import BRIDGED_LEG

router = APIRouter(responses=ERRORS)


@router.post("/calls", response_model=CallOut, status_code=201,
             summary="Place a call through a SIP trunk, Twilio's Calls API or Telnyx's TeXML Calls API")
async def place_call(
    request: Request, response: Response, who: Annotated[Caller, Depends(authenticated)],
    payload: Annotated[CallRequest, Body()],
) -> dict[str, Any]:
    placed = await order_call(app_state(request), who, payload, request.headers.get("idempotency-key"))
    if placed.replayed:
        response.status_code = 200
    response.headers["Location"] = f"/sessions/{placed.shown['session_id']}"
    return placed.shown


@router.get("/edge/calls/{session_id}", include_in_schema=False)
async def call_status(request: Request, session_id: str) -> dict[str, Any]:
    """The session's status for the edge: its INVITE waits for `joined`, said at the call's own turn of the
    trunk's pace (dispatcher/phone/invite_spacing.py): held up to HOLD_SECONDS, else said at a later ask; the
    status after a hold is read again, so a call that ended meanwhile is never dialled."""
    state = await reporting_edge(request, session_id)
    session = await state.sessions.get(session_id)
    if session is None:
        raise not_found(session_id)
    status = session.machine.state.value
    if status == "joined" and state.trunk_calls is not None:
        try:
            wait = await state.trunk_calls.invite_wait(session_id)
        except ApiError:  # the edge's trunks not read now: spaced by the hand-over's pace alone
            wait = 0.0
        if wait > HOLD_SECONDS:
            status = "started"  # the edge asks again within a poll
        elif wait > 0:
            await asyncio.sleep(wait)
            # Read again: a call cancelled (or its bot gone) during the hold must not be dialled.
            session = await state.sessions.get(session_id)
            status = "ended" if session is None else session.machine.state.value
    if status == "ended" and state.trunk_calls is not None:  # stopped before its INVITE: its turn is the next's
        with contextlib.suppress(ApiError):  # the edge's trunks not read now: the turn passes unused
            await state.trunk_calls.invite_given_back(session_id)
    return {"session_id": session_id, "status": status}


@router.post("/edge/calls/{session_id}/outcome", status_code=204, include_in_schema=False)
async def call_outcome(request: Request, session_id: str, outcome: Annotated[CallOutcome, Body()]) -> Response:
    """What the far end answered. Not answered: the session ends, with the outcome as its reason."""
    state = await reporting_edge(request, session_id)
    fields = outcome.model_dump(exclude_none=True)
    if outcome.outcome == "not_placed" and await state.sessions.get(session_id) is None:
        await ended_unstarted(state, session_id, trunk=outcome.trunk, detail=outcome.detail)
        return Response(status_code=204)
    await record_outcome(state, session_id, fields.pop("outcome"), **fields)
    return Response(status_code=204)


@router.post("/edge/calls/{session_id}/sip_end", status_code=204, include_in_schema=False)
async def outbound_sip_end(request: Request, session_id: str, end: Annotated[SipEnd, Body()]) -> Response:
    """An answered call's SIP end (who hung up, how, its answered seconds on the edge's clock): on the session's
    timeline as an inbound call's (dispatcher/api/routers/sip_end.py), for its webhook, its report and its price."""
    state = await reporting_edge(request, session_id)
    state.sessions.timeline.note(session_id, SIP_ENDED, **end.model_dump(exclude_none=True))
    return Response(status_code=204)


@router.post("/edge/calls/{session_id}/warm", include_in_schema=False, response_model=None)
async def warm_step(request: Request, session_id: str,
                    step: Annotated[WarmStep, Body()]) -> dict[str, Any] | Response:
    """A warm transfer's step (dispatcher/api/warm_briefing.py): the bot told to brief the person, to stop, or
    that the person did not answer; `{"spoken": bool}` once it has said its line (or could not). Only for a
    warm transfer under way: else 409 `no_warm_transfer`. An inbound call another region holds: relayed there."""
    if (relayed := await relayed_report(request, session_id)) is not None:
        return relayed
    state = await reporting_edge(request, session_id, crosses_regions=True)
    await under_way(state, session_id, step)
    if await state.sessions.get(session_id) is None:
        raise not_found(session_id)
    return await tell_bot(state, session_id, step)


@router.post("/edge/calls/{session_id}/bridged", status_code=204, include_in_schema=False)
async def bridged_leg(request: Request, session_id: str, leg: Annotated[BridgedLeg, Body()]) -> Response:
    """A bridged transfer's person answered, or hung up: on the session's timeline, after its end (the session
    ended `transferred` at the bridge), so that its cost prices the leg's minutes (usage/telephony_cost.py). An
    inbound call another region holds: relayed there, the leg's minutes priced where its session is."""
    if (relayed := await relayed_report(request, session_id)) is not None:
        return relayed
    state = await reporting_edge(request, session_id, crosses_regions=True)
    if not await state.sessions.timeline.read(session_id):
        raise not_found(session_id)
    fields = leg.model_dump(exclude_none=True)
    state.sessions.timeline.note(session_id, BRIDGED_LEG, leg=fields.pop("event"), **fields)
    await state.sessions.timeline.settled()
    return Response(status_code=204)
