"""`POST /sessions/{id}/sip_end`: the SIP edge (sipedge/) tells how a call's SIP side ended, with the
number's API key, the session's own (another key's session, or one never started: 404). Recorded on
the session's timeline as `sip_ended` (dispatcher/observability/sip_end.py). Its `answered_seconds`, the
edge's count of the call's answered time, prices the call (dispatcher/usage/telephony_cost.py): the number's
key is a client's key too, so it is taken only with the credential of the edge the call came in at, or,
relayed, on the signed word of the region it came in at (dispatcher/api/edge_line.py). An end told without
it is kept once, the first: what a client holding the number's key may say can neither hide the edge's end
nor fill the timeline."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from dispatcher.api.dependencies import app_state, not_found, owned_id
from dispatcher.api.edge_holder import COUNT
from dispatcher.api.edge_line import edge_vouches
from dispatcher.api.routers.sessions import authenticated
from dispatcher.api.schemas import ERRORS
from dispatcher.errors import ApiError
from dispatcher.observability.sip_end import SIP_ENDED
from dispatcher.sessions.ids import Caller
from dispatcher.store.unavailable import StoreUnavailable

router = APIRouter(responses=ERRORS)
MAX_ANSWERED_SECONDS = 7 * 24 * 3600.0  # beyond any session's cap: a bound on the number, not a policy


class SipEnd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: Literal["caller", "callee", "edge"] = Field(
        description="who hung up: the caller (an inbound call's far end, through its trunk), the callee (an outbound "
                    "call's far end), or the edge")
    how: Literal["bye", "cancel", "refused", "failed", "referred", "bridged"] = Field(
        description="`bye`; `cancel` while it rang; `refused`: the edge's final answer before the call was "
                    "answered; `failed`: PJSIP ended it (a 200 OK never acknowledged); `referred`: handed to a "
                    "person by REFER; `bridged`: handed to a person the edge called, the edge bridging the two")
    status: int | None = Field(default=None, ge=100, le=699, description="the SIP status, where there was one")
    reason: str | None = Field(default=None, max_length=256,
                               description="the BYE's or CANCEL's `Reason:` header, or the edge's own words")
    answered_seconds: float | None = Field(
        default=None, ge=0, le=MAX_ANSWERED_SECONDS, strict=True, allow_inf_nan=False,
        description="an answered call's seconds from the edge's `200 OK` to this end, on the edge's clock: what "
                    "the session's telephony line prices. Taken only from the SIP edge, with its own credential in "
                    "`X-Voicefleet-Edge-Secret` (403 `sip_edge_only` from anyone else, `sip_edge_not_holding` from "
                    "another edge than the call's; relayed from another region, taken on that region's word that its "
                    "edge holding the call told it, else left out)")


@router.post("/sessions/{session_id}/sip_end", status_code=204, summary="How a SIP call's SIP side ended")
async def sip_end(request: Request, session_id: str, end: SipEnd,
                  who: Annotated[Caller, Depends(authenticated)]) -> Response:
    state = app_state(request)
    owned = await owned_id(state, session_id, who)
    if not await state.sessions.ever_existed(owned):
        raise not_found(session_id)
    told = end.model_dump(exclude_none=True)
    vouched = "answered_seconds" in told and await edge_vouches(request, state, COUNT, owned)
    if not vouched:
        told.pop("answered_seconds", None)  # relayed without the word of the region whose edge holds the call
        # Said without the edge's word, only the first counts (the webhook and the report carry it): kept once, so
        # a client holding the number's key cannot fill the timeline's last events with its own.
        try:
            first = await state.sessions.noted_once.first(SIP_ENDED, owned, unanswered_notes=False)
        except StoreUnavailable:
            raise ApiError(503, "store_unavailable", "the replicas' store did not answer: nothing was kept, send it "
                           "again", retry_after=1.0) from None
        if not first:
            return Response(status_code=204)
    state.sessions.timeline.note(owned, SIP_ENDED, **told)
    return Response(status_code=204)
