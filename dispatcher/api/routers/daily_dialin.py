"""Daily PSTN dial-in over HTTP: pinless `room_creation_api` → a SIP-enabled room and a bot with
Pipecat's dial-in body; the bot's `pinlessCallUpdate` goes through here with a credential for its
call only (the rules: dispatcher/phone/daily_dialin.py), to its own session's room only (403 for any
other `sipUri`, read against the room's config at Daily).

    POST /phone/daily/dialin/{secret}   Daily's webhook: {From, To, callId, callDomain, sipHeaders?}
    POST /phone/daily/{session_id}/dialin/pinlessCallUpdate   the bot's call, forwarded to Daily

With several regions, a call this region cannot start warm within `PHONE_MAX_WAIT_SECONDS` goes,
relayed as a spilled `POST /start` is, to the region a start would spill to; its key's home keeps
a retried webhook on the same session wherever it lands (docs/regions.md, "Phone calls across regions").

Traced (dispatcher/observability/tracing.py): the webhook's `phone.dialin` holds the call's `session.start`; the
bot's update is `phone.dialin_update` in the session's own trace, Daily's call its HTTP child.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

import dispatcher.observability.tracing as tracing
from botchannel.json_input import parse_json
from botchannel.utf8_text import may_hold_surrogates, utf8_strings
from dispatcher.api.dependencies import app_state
from dispatcher.api.region_choice import spilled_from, started_elsewhere
from dispatcher.api.region_relay import relayed_by
from dispatcher.errors import ApiError, Utf8JSONResponse
from dispatcher.media.daily import DailyRooms
from dispatcher.outbound.provider_errors import ProviderError, as_api_error
from dispatcher.phone.access import handed_out_base
from dispatcher.phone.calls import PHONE_CALLER
from dispatcher.phone.daily_dialin import DialinCall, check_credential, start_dialin
from dispatcher.sessions.ids import is_session_id

MAX_FIELD = 512
log = logging.getLogger("dispatcher.phone")
router = APIRouter(tags=["phone"])


@router.post("/phone/daily/dialin/{secret}", summary="Daily pinless dial-in webhook (room_creation_api)")
async def daily_dialin(request: Request, secret: str) -> Response:
    expected = app_state(request).phone.settings.daily_dialin_secret
    if expected is None:  # the operator's missing setting, not a wrong guess: say which
        raise ApiError(403, "forbidden", "DAILY_DIALIN_SECRET is not set on this dispatcher: set it (at least 32 "
                                         "random characters) and give Daily /phone/daily/dialin/{that secret}")
    if not hmac.compare_digest(secret.encode(), expected.encode()):
        raise ApiError(403, "forbidden", "this is not the dial-in webhook's URL")
    return await _dialin(request)


@router.post("/phone/daily/dialin", summary="Daily pinless dial-in webhook, keyless local dispatchers only")
async def daily_dialin_keyless(request: Request) -> Response:
    if not app_state(request).phone.settings.keyless:
        raise ApiError(403, "forbidden", "set DAILY_DIALIN_SECRET and give Daily /phone/daily/dialin/{secret}")
    return await _dialin(request)


async def _dialin(request: Request) -> Response:
    state = app_state(request)
    payload = await _json(request)
    call_id, call_domain = payload.get("callId"), payload.get("callDomain")
    if call_id is None and call_domain is None:  # Daily's verification ping when the number is configured
        return Utf8JSONResponse({"status": "ok"})
    fields = {"callId": call_id, "callDomain": call_domain, "From": payload.get("From"), "To": payload.get("To")}
    for name, value in fields.items():
        required = name in ("callId", "callDomain")
        if (value is None and required) or (value is not None and not _short_text(value)):
            raise ApiError(422, "invalid_request", f"`{name}` must be a string of at most {MAX_FIELD} characters")
    headers = payload.get("sipHeaders")
    if headers is not None and not (isinstance(headers, dict) and all(_short_text(v) for v in headers.values())):
        raise ApiError(422, "invalid_request", "`sipHeaders` must be an object of strings")
    if not isinstance(state.rooms, DailyRooms):
        raise ApiError(409, "no_daily", _no_daily_rooms(state.settings.cloud))
    call = DialinCall(str(call_id), str(call_domain), fields["From"], fields["To"], headers,
                      region=state.settings.region)
    spilled = None
    if state.peers.by_name:
        if relayed_by(request.scope) is not None:  # its region was chosen where it arrived
            spilled = spilled_from(request.headers)
        else:  # a call this region cannot start warm goes where a start would spill
            # A caller on the line: while the call's key home is down, its stand-in decides (never a 503).
            elsewhere = await started_elsewhere(request, state, "daily", state.phone.settings.max_wait_seconds,
                                                None, PHONE_CALLER, call.session_key, standby_home=True)
            if elsewhere is not None:
                return elsewhere
    # The bot's update must reach the region whose key signed its credential: this one.
    base = handed_out_base(state.phone.settings, request.headers, request.url.scheme, state.peers.regions)
    with tracing.step("phone.dialin", **{"voicefleet.session.id": call.session_id}):
        session = await start_dialin(
            state.sessions, call, api_url=f"{base}/phone/daily/{call.session_id}",
            token_key=state.phone.settings.token_key, now=state.phone.clock(),
            max_session_seconds=state.settings.max_session_seconds, counted_elsewhere=spilled is not None,
        )
    if spilled is not None and session.created:
        log.info("daily dial-in %s: spilled over from region %s (%s)", session.machine.session_id, *spilled)
        state.sessions.timeline.note(session.machine.session_id, "spilled", from_region=spilled[0], reason=spilled[1])
    answer = {"sessionId": session.machine.session_id, "status": session.machine.state.value}
    if session.room_url:
        answer["dailyRoom"] = session.room_url
    return Utf8JSONResponse(answer, status_code=201 if session.created else 200)


@router.post("/phone/daily/{session_id}/dialin/pinlessCallUpdate", include_in_schema=False)
async def pinless_call_update(request: Request, session_id: str) -> Utf8JSONResponse:
    """The bot's `pinlessCallUpdate` (Pipecat's DailyTransport on `dialin-ready`), forwarded."""
    state = app_state(request)
    payload = await _json(request)
    call_id, call_domain, sip_uri = payload.get("callId"), payload.get("callDomain"), payload.get("sipUri")
    if not (is_session_id(session_id) and all(_short_text(v) for v in (call_id, call_domain, sip_uri))):
        raise ApiError(422, "invalid_request", "expected {callId, callDomain, sipUri}")
    check_credential(state.phone.settings.token_key, session_id, str(call_id), str(call_domain),
                     request.headers.get("authorization", ""), state.phone.clock())
    if not isinstance(state.rooms, DailyRooms):
        raise ApiError(409, "no_daily", "this deployment has no Daily rooms")
    parent = None
    if tracing.exporting():
        parent = tracing.session_traceparent(await state.sessions.timeline.read(session_id))
    with tracing.in_session("phone.dialin_update", parent, **{"voicefleet.session.id": session_id}) as span:
        try:
            # The credential opens this session's call only: it may reach this session's room only, never
            # put its caller in another session's room (where that room's transfer would take it for its own).
            own = await state.rooms.sip_endpoint(session_id)
            if own != sip_uri:
                tracing.failed(span, "forbidden")
                raise ApiError(403, "forbidden", "a dial-in call may only be connected to its own session's room: "
                               "sipUri must be the SIP endpoint of this session's Daily room (the one Daily's "
                               "dialin-ready gives the bot)" if own else "this session has no SIP-enabled Daily "
                               "room to connect the call to (it ended, or was no dial-in call)")
            await state.rooms.pinless_call_update(str(call_id), str(call_domain), str(sip_uri))
        except ProviderError as exc:  # e.g. Daily no longer holds the call: its stable reason, never its words
            error = as_api_error(exc)
            tracing.failed(span, error.code)
            raise error from exc
    return Utf8JSONResponse({"status": "success"})


async def _json(request: Request) -> dict[str, Any]:
    try:
        # Strict UTF-8 first (JSON's one encoding): json.loads(bytes) would also read UTF-16 and
        # UTF-32, and a surrogate's own bytes, past the check for lone surrogates below.
        body = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_json", "the body is not UTF-8: send the webhook's JSON as UTF-8") from None
    try:
        payload = parse_json(body)
    except ValueError:
        raise ApiError(400, "invalid_json", "the body is not JSON") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_json", "the body is not a JSON object")
    # A caller's From or SIP header may carry a lone surrogate, which UTF-8 (Daily's API, a bot's
    # environment) cannot hold: it becomes U+FFFD and the call goes on, as a bot's frame's does.
    return utf8_strings(payload) if may_hold_surrogates(body) else payload


def _no_daily_rooms(cloud: bool) -> str:
    """Why there is no room for a dial-in call: this dispatcher offers no Daily sessions."""
    if not cloud:
        return ("Daily dial-in needs a Daily room per call, and this local dispatcher makes none: start it with "
                "TRANSPORTS=webrtc,daily and DAILY_API_KEY (docs/phone.md, Trying it locally)")
    return "this deployment has no Daily rooms for dial-in: set DAILY_API_KEY and keep daily in TRANSPORTS"


def _short_text(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_FIELD
