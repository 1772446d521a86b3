"""Twilio's requests for a warm transfer's call to the person (dispatcher/phone/twilio_warm.py):

    POST /phone/twilio/warm/{session_id}/{transfer}/{mac}/status    CallStatus: ringing, in-progress, busy, …
    POST /phone/twilio/warm/{session_id}/{transfer}/{mac}/briefed   the briefing said: answered with TwiML

Each is checked before it counts: `X-Twilio-Signature` (TWILIO_AUTH_TOKEN, over the address the create
gave Twilio), the URL's MAC of the session and transfer (handed out with that create only), and once
across every replica (a replay is refused, as a call webhook's is). What each says is kept in the store
for the replica waiting on the transfer, whichever replica Twilio reached.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request, Response

from dispatcher.api.dependencies import app_state
from dispatcher.api.routers.webhooks import UNTIMED_SIGNATURE_SECONDS, first_time
from dispatcher.api.state import AppState
from dispatcher.api.twilio_signed import signed_form
from dispatcher.errors import ApiError
from dispatcher.phone.twilio_warm import TwilioWarm, briefed, mac_valid
from dispatcher.store.client import StoreUnavailable

router = APIRouter(prefix="/phone/twilio/warm", include_in_schema=False)
TRANSFER = re.compile(r"[0-9a-f]{32}")


@router.post("/{session_id}/{transfer}/{mac}/status")
async def consult_status(request: Request, session_id: str, transfer: str, mac: str) -> Response:
    state, form, warm = await _verified(request, session_id, transfer, mac)
    return await heard_status(warm, session_id, transfer, form["CallSid"], form.get("CallStatus", ""))


@router.post("/{session_id}/{transfer}/{mac}/briefed")
async def consult_briefed(request: Request, session_id: str, transfer: str, mac: str) -> Response:
    state, _, _ = await _verified(request, session_id, transfer, mac)
    return await briefed_answer(state, transfer)


async def heard_status(warm: TwilioWarm, session_id: str, transfer: str, sid: str, status: str) -> Response:
    """A verified status callback of the consult call, Twilio's or Telnyx's (routers/telnyx_warm.py)."""
    try:
        await warm.heard(session_id, transfer, sid, status)
    except StoreUnavailable:
        raise ApiError(503, "store_unavailable", "the store did not keep the call's status: the carrier retries",
                       retry_after=1) from None
    return Response(status_code=204)


async def briefed_answer(state: AppState, transfer: str) -> Response:
    """A verified `<Redirect>` after the briefing: the conference's TwiML (or TeXML), else a hang-up."""
    try:
        twiml = await briefed(state.replication.coordination.key_holders, transfer)
    except StoreUnavailable:
        raise ApiError(503, "store_unavailable", "the store did not say whether the transfer goes on") from None
    return Response(twiml, media_type="application/xml")


async def _verified(request: Request, session_id: str, transfer: str,
                    mac: str) -> tuple[AppState, dict[str, str], TwilioWarm]:
    state = app_state(request)
    warm, settings = state.phone.twilio_warm, state.phone.settings
    if warm is None or not settings.twilio_auth_token:
        raise ApiError(404, "not_found", "this dispatcher makes no warm transfers through Twilio")
    form, signature = await signed_form(request, state, settings.twilio_auth_token)
    if not TRANSFER.fullmatch(transfer) or not mac_valid(settings.token_key, session_id, transfer, mac):
        raise ApiError(403, "callback_forged", "this callback URL was not handed out for that transfer")
    await first_time(request, f"twilio-warm:{signature}", UNTIMED_SIGNATURE_SECONDS)
    return state, form, warm
