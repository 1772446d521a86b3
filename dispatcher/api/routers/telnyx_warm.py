"""Telnyx's requests for a warm transfer's call to the person (dispatcher/phone/telnyx_warm.py):

    POST /phone/telnyx/warm/{session_id}/{transfer}/{mac}/status    CallStatus: ringing, in-progress, busy, …
    POST /phone/telnyx/warm/{session_id}/{transfer}/{mac}/briefed   the briefing said: answered with TeXML

Each is checked before it counts: Telnyx's Ed25519 signature of its timestamp and body (TELNYX_PUBLIC_KEY;
older than its tolerance: refused), the URL's MAC of the session and transfer (handed out with that create
only: the signature covers the body, not the URL), and once across every replica and every Telnyx-signed
route. What each then does is the Twilio routes' (routers/twilio_warm.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from dispatcher.api.dependencies import app_state
from dispatcher.api.routers.twilio_warm import TRANSFER, briefed_answer, heard_status
from dispatcher.api.routers.webhooks import TELNYX_SECONDS, first_time, telnyx_once
from dispatcher.api.state import AppState
from dispatcher.api.telnyx_signed import telnyx_signed_form
from dispatcher.errors import ApiError
from dispatcher.phone.twilio_warm import TwilioWarm, mac_valid

router = APIRouter(prefix="/phone/telnyx/warm", include_in_schema=False)


@router.post("/{session_id}/{transfer}/{mac}/status")
async def consult_status(request: Request, session_id: str, transfer: str, mac: str) -> Response:
    _, form, warm, call = await _verified(request, session_id, transfer, mac)
    return await heard_status(warm, session_id, transfer, call, form.get("CallStatus", ""))


@router.post("/{session_id}/{transfer}/{mac}/briefed")
async def consult_briefed(request: Request, session_id: str, transfer: str, mac: str) -> Response:
    state, _, _, _ = await _verified(request, session_id, transfer, mac)
    return await briefed_answer(state, transfer)


async def _verified(request: Request, session_id: str, transfer: str,
                    mac: str) -> tuple[AppState, dict[str, str], TwilioWarm, str]:
    """The callback's form, the warm transfers' driver and the call it names (`AccountSid/CallSid`)."""
    state = app_state(request)
    warm, key = state.phone.telnyx_warm, state.phone.settings.telnyx_key
    if warm is None or key is None:
        raise ApiError(404, "not_found", "this dispatcher makes no warm transfers through Telnyx")
    form, call, signature = await telnyx_signed_form(request, key)
    if not TRANSFER.fullmatch(transfer) or not mac_valid(state.phone.settings.token_key, session_id, transfer, mac,
                                                         "telnyx"):
        raise ApiError(403, "callback_forged", "this callback URL was not handed out for that transfer")
    await first_time(request, telnyx_once(signature), TELNYX_SECONDS)  # spent at every Telnyx-signed route
    return state, form, warm, call
