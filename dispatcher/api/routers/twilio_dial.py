"""Twilio's callbacks for a call placed through its Calls API (dispatcher/phone/twilio_dial.py):

    POST /phone/twilio/calls/{session_id}/{mac}/status   CallStatus: in-progress (answered), busy, …
    POST /phone/twilio/calls/{session_id}/{mac}/amd      AnsweredBy: human, machine_start, …, fax, unknown

Each is checked before it counts: `X-Twilio-Signature` (TWILIO_AUTH_TOKEN), the URL's MAC of the session
(handed out with this call's create only), and once across every replica (a replay is refused, as a
call webhook's is). What each then does: dispatcher/api/placed_call_events.py.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from dispatcher.api.dependencies import app_state
from dispatcher.api.placed_call_events import amd_event, status_event
from dispatcher.api.routers.webhooks import UNTIMED_SIGNATURE_SECONDS, first_time
from dispatcher.api.state import AppState
from dispatcher.api.twilio_signed import signed_form
from dispatcher.errors import ApiError
from dispatcher.phone.dialer import Dialer
from dispatcher.phone.twilio_dial import mac_valid

router = APIRouter(prefix="/phone/twilio/calls", include_in_schema=False)


@router.post("/{session_id}/{mac}/status")
async def call_status(request: Request, session_id: str, mac: str) -> Response:
    state, form, _, dialer = await _verified(request, session_id, mac)
    await status_event(state, dialer, session_id, form, form["CallSid"])
    return Response(status_code=204)


@router.post("/{session_id}/{mac}/amd")
async def amd_verdict(request: Request, session_id: str, mac: str) -> Response:
    state, form, kept, dialer = await _verified(request, session_id, mac)
    await amd_event(state, dialer, session_id, form, form["CallSid"], kept)
    return Response(status_code=204)


async def _verified(request: Request, session_id: str,
                    mac: str) -> tuple[AppState, dict[str, str], dict[str, Any], Dialer]:
    state = app_state(request)
    dialer, settings = state.phone.dialers.get("twilio"), state.phone.settings
    if dialer is None or not settings.twilio_auth_token:
        raise ApiError(404, "not_found", "this dispatcher places no calls through Twilio")
    form, signature = await signed_form(request, state, settings.twilio_auth_token)
    if not mac_valid(settings.token_key, session_id, mac):
        raise ApiError(403, "callback_forged", "this callback URL was not handed out for that session")
    await first_time(request, f"twilio-call:{signature}", UNTIMED_SIGNATURE_SECONDS)
    kept = await dialer.kept_call(session_id)
    if kept is None:
        raise ApiError(404, "not_found", f"no call placed through Twilio is known for session {session_id}")
    return state, form, kept, dialer
