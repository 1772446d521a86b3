"""Daily PSTN dial-in: pinless `room_creation_api` → a SIP-enabled room and a bot with Pipecat's
dial-in body; the bot's `pinlessCallUpdate` goes through here with a credential for its call only.

    POST /phone/daily/dialin/{secret}   Daily's webhook: {From, To, callId, callDomain, sipHeaders?}
    POST /phone/daily/{session_id}/dialin/pinlessCallUpdate   the bot's call, forwarded to Daily

Daily holds the caller (hold music) until the room is ready, so this is the one phone path where a
cold start is heard as music rather than silence. The webhook answers as soon as the launch is
accepted; a retried webhook (same `callId`) finds the same session. The bot is handed, as Pipecat's
`DailyDialinRequest` says, a `daily_api_key` and `daily_api_url`: here a credential bound to this
session and this call, and this dispatcher's URL, so the deployment's Daily key never reaches a bot.
That credential travels in the bot's launch body (ECS overrides, instance metadata), so it expires
when the session can no longer be running.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from dispatcher.api.state import app_state
from dispatcher.errors import ApiError
from dispatcher.media.daily import DailyRooms
from dispatcher.media.room_options import RoomOptions
from dispatcher.outbound.provider_errors import ProviderError, as_api_error
from dispatcher.phone.access import public_base
from dispatcher.phone.calls import PHONE_CALLER
from dispatcher.phone.state import PhoneState, phone_state
from dispatcher.sessions.ids import is_session_id, new_session_id
from dispatcher.sessions.service import Session

MAX_FIELD = 512
# A call credential lives as long as its session may (MAX_SESSION_SECONDS) plus this margin.
CREDENTIAL_MARGIN_SECONDS = 120
# Its expiry counts from the start of the minute the webhook came in (the margin covers the rest):
# Daily's retry of the webhook must build the very same body, because the session's idempotency
# check compares bodies and a different credential would be answered 409.
CREDENTIAL_STEP_SECONDS = 60
router = APIRouter(tags=["phone"])


@router.post("/phone/daily/dialin/{secret}", summary="Daily pinless dial-in webhook (room_creation_api)")
async def daily_dialin(request: Request, secret: str) -> JSONResponse:
    phone = phone_state(request)
    expected = phone.settings.daily_dialin_secret
    if expected is None or not hmac.compare_digest(secret.encode(), expected.encode()):
        raise ApiError(403, "forbidden", "this is not the dial-in webhook's URL")
    return await _dialin(request, phone)


@router.post("/phone/daily/dialin", summary="Daily pinless dial-in webhook, keyless local dispatchers only")
async def daily_dialin_keyless(request: Request) -> JSONResponse:
    phone = phone_state(request)
    if not phone.settings.keyless:
        raise ApiError(403, "forbidden", "set DAILY_DIALIN_SECRET and give Daily /phone/daily/dialin/{secret}")
    return await _dialin(request, phone)


async def _dialin(request: Request, phone: PhoneState) -> JSONResponse:
    state = app_state(request)
    payload = await _json(request)
    call_id, call_domain = payload.get("callId"), payload.get("callDomain")
    if call_id is None and call_domain is None:  # Daily's verification ping when the number is configured
        return JSONResponse({"status": "ok"})
    fields = {"callId": call_id, "callDomain": call_domain, "From": payload.get("From"), "To": payload.get("To")}
    for name, value in fields.items():
        required = name in ("callId", "callDomain")
        if (value is None and required) or (value is not None and not _short_text(value)):
            raise ApiError(422, "invalid_request", f"`{name}` must be a string of at most {MAX_FIELD} characters")
    headers = payload.get("sipHeaders")
    if headers is not None and not (isinstance(headers, dict) and all(_short_text(v) for v in headers.values())):
        raise ApiError(422, "invalid_request", "`sipHeaders` must be an object of strings")
    if not isinstance(state.rooms, DailyRooms):
        raise ApiError(409, "no_daily", "this deployment has no Daily rooms (DAILY_API_KEY) for dial-in")
    session_key = f"daily-dialin:{call_id}"  # Daily's retry of this call finds the same session
    session_id = new_session_id(PHONE_CALLER, session_key)
    dialin_settings = {"call_id": call_id, "call_domain": call_domain, "To": fields["To"], "From": fields["From"]}
    if headers:
        dialin_settings["sip_headers"] = headers
    api_url = f"{public_base(phone.settings, request.headers, request.url.scheme)}/phone/daily/{session_id}"
    sip = {"display_name": str(fields["From"] or "caller")[:64], "sip_mode": "dial-in", "num_endpoints": 1}

    async def start(expires: int) -> Session:
        credential = _call_credential(phone, session_id, str(call_id), str(call_domain), expires)
        body = {"dialin_settings": dialin_settings, "daily_api_key": credential, "daily_api_url": api_url}
        return await state.sessions.start(
            caller=PHONE_CALLER, idempotency_key=session_key, body=body, wait=False,
            room_options=RoomOptions(room={"sip": sip}), transport="daily",
        )  # fmt: skip

    minute = int(phone.clock()) // CREDENTIAL_STEP_SECONDS * CREDENTIAL_STEP_SECONDS
    expires = minute + state.settings.max_session_seconds + CREDENTIAL_MARGIN_SECONDS
    try:
        session = await start(expires)
    except ApiError as exc:
        if exc.code != "idempotency_conflict":
            raise
        # A retry in the minute after the first attempt: the session's body has that minute's expiry.
        session = await start(expires - CREDENTIAL_STEP_SECONDS)
    answer = {"sessionId": session.machine.session_id, "status": session.machine.state.value}
    if session.room_url:
        answer["dailyRoom"] = session.room_url
    return JSONResponse(answer, status_code=201 if session.created else 200)


@router.post("/phone/daily/{session_id}/dialin/pinlessCallUpdate", include_in_schema=False)
async def pinless_call_update(request: Request, session_id: str) -> JSONResponse:
    """The bot's `pinlessCallUpdate` (Pipecat's DailyTransport on `dialin-ready`), forwarded."""
    phone, state = phone_state(request), app_state(request)
    payload = await _json(request)
    call_id, call_domain, sip_uri = payload.get("callId"), payload.get("callDomain"), payload.get("sipUri")
    if not (is_session_id(session_id) and all(_short_text(v) for v in (call_id, call_domain, sip_uri))):
        raise ApiError(422, "invalid_request", "expected {callId, callDomain, sipUri}")
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    expires_text = presented.strip().partition(".")[0]
    expires = int(expires_text) if expires_text.isascii() and expires_text.isdigit() and len(expires_text) < 16 else 0
    expected = _call_credential(phone, session_id, str(call_id), str(call_domain), expires)
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected.encode()):
        raise ApiError(403, "forbidden", "this credential does not open that call")
    if phone.clock() > expires:
        raise ApiError(403, "forbidden", "this credential has expired")
    if not isinstance(state.rooms, DailyRooms):
        raise ApiError(409, "no_daily", "this deployment has no Daily rooms")
    try:
        await state.rooms.pinless_call_update(str(call_id), str(call_domain), str(sip_uri))
    except ProviderError as exc:  # e.g. Daily no longer holds the call: its stable reason, never its words
        raise as_api_error(exc) from exc
    return JSONResponse({"status": "success"})


def _call_credential(phone: PhoneState, session_id: str, call_id: str, call_domain: str, expires: int) -> str:
    """`<expires>.<hmac>`: deterministic for a given expiry (a retried webhook hands the bot the same
    body), bound to one session and call, signed with its expiry (epoch seconds)."""
    message = f"daily-dialin\x00{session_id}\x00{call_id}\x00{call_domain}\x00{expires}".encode()
    return f"{expires}.{hmac.new(phone.settings.token_key, message, hashlib.sha256).hexdigest()}"


async def _json(request: Request) -> dict[str, Any]:
    try:
        payload = await request.json()
    except ValueError:
        raise ApiError(400, "invalid_json", "the body is not JSON") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_json", "the body is not a JSON object")
    return payload


def _short_text(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_FIELD
