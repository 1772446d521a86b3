"""Telnyx's callbacks for a call placed through its TeXML Calls API (dispatcher/phone/telnyx_dial.py):

    POST /phone/telnyx/calls/{session_id}/{mac}/status   CallStatus: in-progress (answered), busy, …
    POST /phone/telnyx/calls/{session_id}/{mac}/amd      AnsweredBy: human, machine_start, …, fax, unknown

Each is checked before it counts: Telnyx's Ed25519 signature of its timestamp and body (TELNYX_PUBLIC_KEY;
older than its tolerance: refused), the URL's MAC of the session (handed out with this call's create only:
the signature covers the body, not the URL), the account being this dispatcher's, once across every
replica and every Telnyx-signed route, and the call being the one the session's first callback named.
What each then does: dispatcher/api/placed_call_events.py, the code Twilio's calls use.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from dispatcher.api.dependencies import app_state
from dispatcher.api.placed_call_events import amd_event, status_event
from dispatcher.api.routers.webhooks import TELNYX_SECONDS, first_time, telnyx_once
from dispatcher.api.state import AppState
from dispatcher.api.telnyx_signed import telnyx_signed_form
from dispatcher.errors import ApiError
from dispatcher.phone.dialer import CALL_SID_KEPT, Dialer
from dispatcher.phone.twilio_dial import mac_valid

router = APIRouter(prefix="/phone/telnyx/calls", include_in_schema=False)


@router.post("/{session_id}/{mac}/status")
async def call_status(request: Request, session_id: str, mac: str) -> Response:
    state, form, _, dialer, _ = await _verified(request, session_id, mac)
    await status_event(state, dialer, session_id, form, form["CallSid"])
    return Response(status_code=204)


@router.post("/{session_id}/{mac}/amd")
async def amd_verdict(request: Request, session_id: str, mac: str) -> Response:
    state, form, kept, dialer, call = await _verified(request, session_id, mac)
    await amd_event(state, dialer, session_id, form, form["CallSid"], kept, updated_as=call)
    return Response(status_code=204)


async def _verified(request: Request, session_id: str,
                    mac: str) -> tuple[AppState, dict[str, str], dict[str, Any], Dialer, str]:
    """The callback's form, the call's kept values, the dialer and the call (`AccountSid/CallSid`)."""
    state = app_state(request)
    dialer, key = state.phone.dialers.get("telnyx"), state.phone.settings.telnyx_key
    if dialer is None or key is None:
        raise ApiError(404, "not_found", "this dispatcher places no calls through Telnyx")
    form, call, signature = await telnyx_signed_form(request, key, dialer.account)
    if not mac_valid(state.phone.settings.token_key, session_id, mac, "telnyx"):
        raise ApiError(403, "callback_forged", "this callback URL was not handed out for that session")
    await first_time(request, telnyx_once(signature), TELNYX_SECONDS)  # spent at every Telnyx-signed route
    kept = await dialer.kept_call(session_id)
    if kept is None:
        raise ApiError(404, "not_found", f"no call placed through Telnyx is known for session {session_id}")
    await _same_call(dialer, session_id, kept, form["CallSid"])
    return state, form, kept, dialer, call


async def _same_call(dialer: Dialer, session_id: str, kept: dict[str, Any], call_sid: str) -> None:
    """The session's call is the one its first callback named. The URL's MAC binds the session, not the call,
    and Telnyx's signature does not cover the URL: a signed body of another call of the account, posted at
    this session's URL, is refused. The first callback names the call once across replicas (the store's first
    claim: a callback at another replica at the same moment reads the same call)."""
    earlier = kept.get(CALL_SID_KEPT)  # named inside the values by an earlier version
    bound = earlier if isinstance(earlier, str) else await dialer.bind_call(session_id, call_sid)
    if bound != call_sid:
        raise ApiError(403, "callback_forged", "this callback names another call than the one placed for that session")
