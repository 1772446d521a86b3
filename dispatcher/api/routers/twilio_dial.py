"""Twilio's callbacks for a call placed through its Calls API (dispatcher/phone/twilio_dial.py):

    POST /phone/twilio/calls/{session_id}/{mac}/status   CallStatus: in-progress (answered), busy, …
    POST /phone/twilio/calls/{session_id}/{mac}/amd      AnsweredBy: human, machine_start, …, fax, unknown

Each is checked before it counts: `X-Twilio-Signature` (TWILIO_AUTH_TOKEN), the URL's MAC of the session
(handed out with this call's create only), and once across every replica (a replay is refused, as a
call webhook's is). The outcome is recorded as the trunk path records it (dispatcher/api/call_outcomes.py).
A machine's answer does what the call chose: hang up; or hand the call to a fresh stream whose bot finds
`answered_by` in its body (`message`: at the beep; `flag`: at once), the first session ending `voicemail`.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response

from dispatcher.api.call_outcomes import record_outcome
from dispatcher.api.dependencies import app_state
from dispatcher.api.phone_start import phone_start
from dispatcher.api.routers.webhooks import UNTIMED_SIGNATURE_SECONDS, first_time
from dispatcher.api.state import AppState
from dispatcher.api.twilio_place import twilio_base
from dispatcher.errors import ApiError
from dispatcher.phone.signatures import twilio_valid
from dispatcher.phone.twilio_calls import TwilioRefused, Unanswered
from dispatcher.phone.twilio_dial import MACHINE, NOT_ANSWERED, mac_valid, voicemail_action
from dispatcher.phone.twilio_dialer import TwilioDialer

router = APIRouter(prefix="/phone/twilio/calls", include_in_schema=False)
CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")
ANSWERED_BY = ("human", *MACHINE, "fax", "unknown")


@router.post("/{session_id}/{mac}/status")
async def call_status(request: Request, session_id: str, mac: str) -> Response:
    """The call's progress: answered, or its end without an answer (the session ends with it)."""
    state, form, _, _ = await _verified(request, session_id, mac)
    status = form.get("CallStatus", "")
    fields = {"carrier": "twilio", "call_sid": form["CallSid"]}
    if status == "in-progress":
        await record_outcome(state, session_id, "answered", **fields)
    elif status in NOT_ANSWERED:
        await record_outcome(state, session_id, NOT_ANSWERED[status], **fields)
    return Response(status_code=204)


@router.post("/{session_id}/{mac}/amd")
async def amd_verdict(request: Request, session_id: str, mac: str) -> Response:
    """Who answered, by Twilio's asynchronous answering-machine detection."""
    state, form, kept, dialer = await _verified(request, session_id, mac)
    answered_by, call_sid = form.get("AnsweredBy", ""), form["CallSid"]
    if answered_by not in ANSWERED_BY:
        raise ApiError(400, "invalid_form", f"AnsweredBy is one of {', '.join(ANSWERED_BY)}")
    state.sessions.timeline.note(session_id, "answered_by", answered_by=answered_by, carrier="twilio")
    action = voicemail_action(str(kept.get("voicemail")), answered_by)
    fields: dict[str, Any] = {"carrier": "twilio", "call_sid": call_sid, "answered_by": answered_by}
    owner = state.phone.owners(str(kept.get("owner")))
    try:
        if action == "hand_to_bot" and owner is not None:
            base = twilio_base(state)
            body = {**kept.get("body", {}), "answered_by": answered_by}
            answer, _ = phone_start(state.phone, "twilio", body, base, owner, state.settings.region)
            await dialer.hand_over(call_sid, f"{answer['wsUrl']}/{answer['token']}")
            fields["continued_in"] = answer["sessionId"]
        elif action is not None:  # hang_up (or a key removed since: no bot may take the call)
            await dialer.hang_up(call_sid)
    except (TwilioRefused, Unanswered) as exc:
        raise ApiError(502, "twilio_refused", f"the call could not be changed at Twilio: {exc}") from None
    if action is not None:
        await record_outcome(state, session_id, "voicemail", **fields)
    return Response(status_code=204)


async def _verified(request: Request, session_id: str,
                    mac: str) -> tuple[AppState, dict[str, str], dict[str, Any], TwilioDialer]:
    state = app_state(request)
    dialer, settings = state.phone.dialer, state.phone.settings
    if dialer is None or not settings.twilio_auth_token:
        raise ApiError(404, "not_found", "this dispatcher places no calls through Twilio")
    try:
        params = parse_qsl((await request.body()).decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_form", "the callback's body is not UTF-8 form data") from None
    url = twilio_base(state) + request.url.path  # the address the create gave Twilio, which it signed
    url += f"?{request.url.query}" if request.url.query else ""
    signature = request.headers.get("x-twilio-signature")
    if not twilio_valid(settings.twilio_auth_token, url, params, signature):
        raise ApiError(403, "signature_invalid", "X-Twilio-Signature does not match this request")
    if not mac_valid(settings.token_key, session_id, mac):
        raise ApiError(403, "callback_forged", "this callback URL was not handed out for that session")
    form = dict(params)
    if not CALL_SID.fullmatch(form.get("CallSid", "")):
        raise ApiError(400, "invalid_form", "CallSid is not a Twilio call SID (CA and 32 hex digits)")
    await first_time(request, f"twilio-call:{signature}", UNTIMED_SIGNATURE_SECONDS)
    kept = await dialer.kept_call(session_id)
    if kept is None:
        raise ApiError(404, "not_found", f"no call placed through Twilio is known for session {session_id}")
    return state, form, kept, dialer
