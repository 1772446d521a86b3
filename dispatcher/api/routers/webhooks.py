"""The carriers' call webhooks: answer at once with the XML that points the call at this dispatcher.

    POST /phone/twilio    TwiML   <Connect><Stream url="wss://…/ws/twilio/{token}">
    POST /phone/telnyx    TeXML   the same, bidirectionalMode="rtp"
    POST /phone/plivo     Plivo XML <Stream bidirectional="true" keepCallAlive="true">
    POST /phone/plivo/transfer/{ticket}   a transferred Plivo call's <Dial> (plivo_transfer_url.py)

Nothing here waits on a machine (Twilio moves to its fallback URL after 15 s): the answer carries
a one-time token and the call's session starts when the carrier opens the stream. A webhook's
carrier signature is checked first (403 and no token otherwise), then it is answered once across
every replica (with several regions, at its home region too: dispatcher/regions/sightings.py): the
record is keyed on the computed signature alone and kept as long as the signature is valid
(docs/security.md says why, and the replay window that remains). A store that
does not answer gets the webhook a 503, never a token this replica cannot vouch for. Each check is
a `phone.webhook` span.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Iterator
from urllib.parse import parse_qsl
from xml.sax.saxutils import quoteattr

from fastapi import APIRouter, Request, Response

import dispatcher.observability.tracing as tracing
from dispatcher.api.call_handoff import handed_elsewhere
from dispatcher.api.carrier_copy import (
    CARRIER_RECORDING_NOT_KEPT,
    CARRIER_RECORDING_READY,
    carrier_copy_kept,
    requested_release,
)
from dispatcher.api.dependencies import app_state
from dispatcher.api.plivo_late_fetch import session_over
from dispatcher.errors import ApiError
from dispatcher.phone.access import (
    SIGNED_STREAM_MEMORY_SECONDS,
    carrier_base,
    handed_out_base,
    public_base,
    websocket_url,
)
from dispatcher.phone.calls import PHONE_CALLER
from dispatcher.phone.carrier_recording import (
    MAX_LINKED,
    RECORDING_CARRIERS,
    CallbackRefused,
    callback_path,
    mac_valid,
    recording_from_form,
    start_recording,
)
from dispatcher.phone.plivo_calls import CALL_UUID as PLIVO_CALL_UUID
from dispatcher.phone.plivo_transfer_url import (
    TICKET_SECONDS,
    Ticket,
    claim_key,
    dead_key,
    hang_up_xml,
    read_ticket,
)
from dispatcher.phone.signatures import TELNYX_TOLERANCE_SECONDS, plivo_valid, twilio_valid
from dispatcher.phone.state import PhoneState
from dispatcher.phone.telnyx_calls import call_id as telnyx_call_id
from dispatcher.phone.telnyx_calls import is_first_voice_request
from dispatcher.sessions.ids import Caller
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.coordination import OneTimeUse

log = logging.getLogger("dispatcher.phone")
XML = "application/xml"
UNTIMED_SIGNATURE_SECONDS = SIGNED_STREAM_MEMORY_SECONDS  # Twilio's, Plivo's: past Twilio's longest call
# A placed call's callbacks name these (dispatcher/api/routers/telnyx_dial.py); a call's first request never does.
PLACED_CALL_FIELDS = frozenset({"CallbackSource", "AnsweredBy"})
TELNYX_SECONDS = 2 * TELNYX_TOLERANCE_SECONDS + 60.0  # the tolerance either side of now, and clock skew
STORE_RETRY_SECONDS = 5.0
CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")  # Twilio's SID: a two-letter prefix and 32 hex digits

router = APIRouter(prefix="/phone", tags=["phone"])


@router.post("/twilio", summary="Twilio voice webhook: TwiML that streams the call here")
async def twilio_webhook(request: Request) -> Response:
    state, raw, params, base = await _read(request)
    url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    signed_call: str | None = None  # only a CallSid Twilio signed is vouched for (transfers redirect it)
    with _verifying("twilio"):
        if state.settings.twilio_auth_token:
            signature = request.headers.get("x-twilio-signature")
            if not twilio_valid(state.settings.twilio_auth_token, url, params, signature):
                raise ApiError(403, "signature_invalid", "X-Twilio-Signature does not match this request")
            if not CALL_SID.fullmatch(dict(params).get("CallSid", "")):
                raise ApiError(403, "call_sid_invalid", "CallSid is not a Twilio call SID (CA and 32 hex digits)")
            # The signature has no time in it: a captured webhook stays valid. One token per signature
            # (only the canonical base64 spelling compares equal in twilio_valid), whatever URL it
            # came on: a query can take in the form's first pairs and still sign the same text.
            await first_time(request, f"twilio:{signature}", UNTIMED_SIGNATURE_SECONDS)
            signed_call = dict(params)["CallSid"]
        else:
            _keyless_only(state, "TWILIO_AUTH_TOKEN")
    fields = dict(params)
    stream, recording = await _answer(request, "twilio", call=signed_call)
    parameters = "".join(
        f"<Parameter name={quoteattr(name)} value={quoteattr(fields[key])}/>"
        for key, name in (("From", "from_number"), ("To", "to_number"))
        if fields.get(key)
    )
    return _xml(f"<Response>{recording}<Connect><Stream url={quoteattr(stream)}>{parameters}</Stream></Connect>"
                "</Response>")


@router.post("/telnyx", summary="Telnyx TeXML webhook: TeXML that streams the call here")
async def telnyx_webhook(request: Request) -> Response:
    state, raw, params, _ = await _read(request)
    if PLACED_CALL_FIELDS & {name for name, _ in params}:
        raise ApiError(400, "not_a_new_call", "this body is a placed call's status or answering-machine callback "
                       "(it names CallbackSource or AnsweredBy): Telnyx sends those to the URL the call was created "
                       "with, never here")
    signed_call: str | None = None  # the call's AccountSid/CallSid, vouched for by the signature (transfers)
    with _verifying("telnyx"):
        if state.settings.telnyx_key is not None:
            why = state.settings.telnyx_key.valid(
                raw, request.headers.get("telnyx-signature-ed25519"), request.headers.get("telnyx-timestamp")
            )
            if why is not None:
                raise ApiError(403, f"signature_{why}", "the Telnyx signature is missing, forged or expired")
            await first_time(request, telnyx_once(request.headers.get("telnyx-signature-ed25519")), TELNYX_SECONDS)
            signed_call = await _telnyx_vouched_call(request, dict(params))
        else:
            _keyless_only(state, "TELNYX_PUBLIC_KEY")
    stream, recording = await _answer(request, "telnyx", call=signed_call)
    return _xml(
        f'<Response>{recording}<Connect><Stream url={quoteattr(stream)} bidirectionalMode="rtp"></Stream></Connect>'
        "</Response>"
    )


@router.post("/plivo", summary="Plivo answer URL: Plivo XML that streams the call here")
async def plivo_webhook(request: Request) -> Response:
    state, raw, params, base = await _read(request)
    signed_call: str | None = None  # the CallUUID Plivo signed (transfers name it)
    with _verifying("plivo"):
        if state.settings.plivo_auth_token:
            signature = _plivo_signed(request, state, base, params)
            # Keyed on the signature that matched, not the nonce nor the URL as sent: the nonce follows
            # the body's last value after a `.` (a `.` in that value moves the boundary), and the
            # query is signed sorted without empty pairs (`?&`, re-ordered: the same signature).
            await first_time(request, f"plivo:{signature}", UNTIMED_SIGNATURE_SECONDS)
            # Every signed ringing request of the call vouches for it: Plivo retries the answer URL (a fresh
            # nonce) when the first answer was lost, and streams with the retry's. The URL is signed, so
            # no other callback of the call's is taken here.
            fields = dict(params)
            if PLIVO_CALL_UUID.fullmatch(fields.get("CallUUID", "")) and fields.get("CallStatus") == "ringing":
                signed_call = fields["CallUUID"]
        else:
            _keyless_only(state, "PLIVO_AUTH_TOKEN")
    return await _plivo_stream_xml(request, signed_call)


async def _plivo_stream_xml(request: Request, signed_call: str | None) -> Response:
    stream, _ = await _answer(request, "plivo", call=signed_call)
    return _xml(
        '<Response><Stream bidirectional="true" keepCallAlive="true" contentType="audio/x-mulaw;rate=8000">'
        f"{_text(stream)}</Stream></Response>"
    )


@router.post("/plivo/transfer/{ticket}", include_in_schema=False)
async def plivo_transfer_xml(request: Request, ticket: str) -> Response:
    """Plivo's fetch of a transferred call's XML: signed at the URL it was minted at (this region's, else
    PHONE_PUBLIC_URL), for the call its ticket names (dispatcher/phone/plivo_transfer_url.py). Its
    `<Dial>`, again for a repeat fetch; a dead or expired ticket, or a warm transfer's room its person already
    left, streams the call to a bot again, or hangs it up once its session is over
    (dispatcher/api/plivo_late_fetch.py)."""
    state = app_state(request).phone
    form, signature = await plivo_signed_form(request)
    with _verifying("plivo"):
        handed = read_ticket(state.settings.token_key, ticket)
        if form.get("CallUUID") != handed.call_uuid:
            raise ApiError(403, "callback_forged", "this transfer URL was handed out for another call")
    if (handed.expired() or not await _ticket_alive(app_state(request).phone.webhooks, handed.mac)
            or await _room_left(state, handed)):
        # A ticket of no session moved a warm transfer's person (plivo_warm.py): never theirs to stream to a bot.
        if not handed.session_id or await session_over(app_state(request), handed.session_id):
            log.warning("phone call %s: Plivo fetched a transfer given up on after the session ended: hung up",
                        handed.session_id)
            return _xml(hang_up_xml())
        log.warning("phone call %s: Plivo fetched a transfer given up on: the call goes back to a bot",
                    handed.session_id)
        with _verifying("plivo"):  # a stream token, as the answer URL's: once per signature
            await first_time(request, f"plivo:{signature}", UNTIMED_SIGNATURE_SECONDS)
        return await _plivo_stream_xml(request, handed.call_uuid)
    log.info("phone call %s: Plivo fetched the transfer's XML", handed.session_id)
    return _xml(handed.xml())


async def _room_left(state: PhoneState, handed: Ticket) -> bool:
    """Whether the ticket joins a warm transfer's room whose person hung up before Plivo fetched it (after its
    202): that room ended with them, and the caller would wait alone in a new, silent one. A store that does not
    answer does not keep the caller from the person: they join."""
    if handed.transfer is None or state.plivo_warm is None:
        return False
    try:
        left = await state.plivo_warm.person_left(handed.transfer)
    except StoreUnavailable:
        log.warning("a Plivo warm transfer's room was joined without its record: the store did not answer")
        return False
    if left:
        log.warning("phone call %s: the person left warm transfer %s before Plivo fetched the caller's room",
                    handed.session_id, handed.transfer)
    return left


async def _ticket_alive(claims: OneTimeUse, mac: str) -> bool:
    """Whether the ticket still dials: its record claimed here first, or by an earlier fetch of the call
    (Plivo's own retry); not when the read-back killed it. Plivo has already answered 202, so a store
    that does not answer does not refuse the fetch (Plivo would drop the call): it dials."""
    try:
        if await claims.first_use(claim_key(mac), TICKET_SECONDS * 2):
            return True
        # Taken: a repeat fetch (alive), or the read-back, which writes the dead mark just after its claim.
        # This write marks a ticket dead for any later repeat: a third fetch of one ticket rings no one.
        return await claims.first_use(dead_key(mac), TICKET_SECONDS * 2)
    except StoreUnavailable:
        log.warning("a Plivo transfer fetch was answered without its record: the store did not answer")
        return True


async def plivo_signed_form(request: Request) -> tuple[dict[str, str], str]:
    """A Plivo request to a URL the dispatcher handed out (a transfer's, a warm transfer's: routers/plivo_warm.py):
    its form and the V3 signature that matched it there (this region's URL, else PHONE_PUBLIC_URL); 403 otherwise,
    404 where this dispatcher hands out none."""
    state, _, params, _ = await _read(request)
    with _verifying("plivo"):
        base = carrier_base(state.settings, app_state(request).peers.regions)
        if not state.settings.plivo_auth_token or base is None:
            raise ApiError(404, "not_found", "this dispatcher transfers no Plivo call: PLIVO_AUTH_TOKEN or "
                           "PHONE_PUBLIC_URL is unset")
        return dict(params), _plivo_signed(request, state, base, params)


def _plivo_signed(request: Request, state: PhoneState, base: str, params: list[tuple[str, str]]) -> str:
    """The V3 signature that matched this request (its once-only key), else a 403."""
    assert state.settings.plivo_auth_token is not None
    url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    signature = plivo_valid(state.settings.plivo_auth_token, url, request.headers.get("x-plivo-signature-v3-nonce"),
                            params, request.headers.get("x-plivo-signature-v3"))
    if signature is None:
        raise ApiError(403, "signature_invalid", "X-Plivo-Signature-V3 does not match this request")
    return signature


@contextlib.contextmanager
def _verifying(carrier: str) -> Iterator[None]:
    """The webhook's checks as one span, a refusal's code its `error.type`."""
    with tracing.step("phone.webhook", **{"voicefleet.phone.carrier": carrier}) as span:
        try:
            yield
        except ApiError as exc:
            tracing.failed(span, exc.code)
            raise


async def _read(request: Request) -> tuple[PhoneState, bytes, list[tuple[str, str]], str]:
    state = app_state(request).phone
    raw = await request.body()
    try:
        params = parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_form", "the webhook body is not UTF-8 form data") from None
    return state, raw, params, public_base(state.settings, request.headers, request.url.scheme)


def telnyx_once(signature: str | None) -> str:
    """The once-only key of a Telnyx-signed body, the same at every route: Telnyx signs the timestamp and body,
    never the URL, so a body taken at one route is spent at all. Canonical base64 only (signatures.py), so
    the text is the signature."""
    return f"telnyx:{signature or ''}"


async def first_time(request: Request, key: str, seconds: float) -> None:
    """A signed request seen before, at any replica (with several regions: of any region), is a replay."""
    if not await _seen_first(request, _named(key), seconds):
        raise ApiError(403, "replayed", "this webhook was already answered")


async def claimed(request: Request, key: str, seconds: float) -> bool:
    """`first_time` without its refusal: whether this request claimed `key` (False: another copy did first),
    for a request that answers its copies itself. 503 if the store cannot say."""
    return await _seen_first(request, _named(key), seconds)


async def release_claim(request: Request, key: str) -> None:
    """Gives back a claim whose request could not act (its own 503), so that the carrier's retry is heard,
    not refused as a replay; a store that does not answer keeps it claimed (logged: the retry is refused).
    This region's record only: with several regions, its home region's sighting stays (docs/phone.md)."""
    try:
        await app_state(request).phone.webhooks.release(_record(_named(key)))
    except StoreUnavailable:
        log.warning("a %s webhook's claim was not given back: the store did not answer, so a retry is refused",
                    key.split(":", 1)[0])


def _named(key: str) -> str:
    if key.endswith(":"):
        raise ApiError(403, "replayed", "this webhook names no call to answer once")
    return key


def _record(key: str) -> str:
    return "webhook:" + _digest(key)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _unchecked(key: str) -> ApiError:
    log.warning("a %s webhook was refused: the store did not answer, so a replay could not be ruled out",
                key.split(":", 1)[0])
    return ApiError(503, "store_unavailable", "this webhook cannot be checked against replays right now",
                    retry_after=STORE_RETRY_SECONDS)


async def _seen_first(request: Request, key: str, seconds: float) -> bool:
    """Whether `key` is recorded here for the first time at every replica; 503 if the store cannot say."""
    app, digest = app_state(request), _digest(key)
    # Its home region first (dispatcher/regions/sightings.py): a captured webhook is as valid at
    # every region, whose own records each take it once.
    if app.webhook_sightings is not None and await app.webhook_sightings.first_at_home(digest, seconds) is False:
        return False
    try:
        return await app.phone.webhooks.first_use(_record(key), seconds)
    except StoreUnavailable:
        raise _unchecked(key) from None


async def _telnyx_vouched_call(request: Request, fields: dict[str, str]) -> str | None:
    """The call (`AccountSid/CallSid`) a signed Telnyx body vouches for, so that it can be transferred.

    Ed25519 signs the body, not the URL it was sent to: Telnyx signs a call's status and recording
    callbacks with the same key, and whoever reads one could post it here. So only the first voice
    request's shape vouches, and only once per call; anything else is still answered, not transferable.
    The record outlives every body of that shape: each is signed as the call starts."""
    call = telnyx_call_id(fields.get("AccountSid", ""), fields.get("CallSid", ""))
    if call is None or not is_first_voice_request(fields):
        return None
    return call if await _seen_first(request, f"telnyx-call:{call}", TELNYX_SECONDS) else None


def _keyless_only(state: PhoneState, variable: str) -> None:
    if not state.settings.keyless:
        raise ApiError(403, "carrier_not_configured", f"set {variable} to take this carrier's webhooks")


async def _answer(request: Request, carrier: str, call: str | None = None) -> tuple[str, str]:
    """Where the carrier streams the call (here, or the region it was handed to: docs/regions.md),
    and the `<Start><Recording>` that goes before it when the carrier's own copy is kept (else "").
    `call`: the carrier's id for the call, as its webhook signed it, carried in the token."""
    state = app_state(request)
    handed = await handed_elsewhere(state, carrier)
    if handed is not None:
        stream, session_id, base = handed.stream_url, handed.session_id, state.peers.regions.urls[handed.region]
    else:
        token, grant = state.phone.tokens.mint(carrier, call=call)
        base = handed_out_base(state.phone.settings, request.headers, request.url.scheme, state.peers.regions)
        stream = websocket_url(base, f"/ws/{carrier}/{token}")
        session_id = state.sessions.session_id_for(Caller.named(PHONE_CALLER).owner_key, grant.session_key)
    if not carrier_copy_kept(state, carrier):
        return stream, ""
    return stream, start_recording(carrier, base + callback_path(state.phone.settings.token_key, carrier, session_id))


@router.post("/{carrier}/recordings/{session_id}/{mac}", include_in_schema=False)
async def carrier_recording_status(request: Request, carrier: str, session_id: str, mac: str) -> Response:
    """The carrier's recording status callback: signed as its call webhooks are, once, for the
    session its URL names (and MACs). A completed recording is linked on the session's timeline."""
    state, raw, params, base = await _read(request)
    if carrier not in RECORDING_CARRIERS:  # before the span: an unverified path segment is no attribute
        raise ApiError(404, "not_found", f"no carrier records here by that name: {', '.join(RECORDING_CARRIERS)}")
    with _verifying(carrier):
        if carrier not in state.settings.carrier_recording:
            raise ApiError(404, "not_found", f"this dispatcher keeps no {carrier} recording (PHONE_CARRIER_RECORDING)")
        if carrier == "twilio":
            url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
            signature = request.headers.get("x-twilio-signature")
            if not state.settings.twilio_auth_token or not twilio_valid(
                    state.settings.twilio_auth_token, url, params, signature):
                raise ApiError(403, "signature_invalid", "X-Twilio-Signature does not match this request")
            seconds = UNTIMED_SIGNATURE_SECONDS
        else:
            key = state.settings.telnyx_key
            signature = request.headers.get("telnyx-signature-ed25519")
            why = "missing" if key is None else key.valid(raw, signature, request.headers.get("telnyx-timestamp"))
            if why is not None:
                raise ApiError(403, f"signature_{why}", "the Telnyx signature is missing, forged or expired")
            seconds = TELNYX_SECONDS
        if not mac_valid(state.settings.token_key, carrier, session_id, mac):
            raise ApiError(403, "callback_forged", "this recording callback URL was not handed out for that session")
        try:
            recording = recording_from_form(carrier, params)
        except CallbackRefused as exc:
            raise ApiError(400, "invalid_form", str(exc)) from None
        await first_time(request, telnyx_once(signature) if carrier == "telnyx" else f"twilio-recording:{signature}",
                         seconds)
    app = app_state(request)
    timeline = app.sessions.timeline
    if recording.status == "completed":
        events = await timeline.read(session_id)
        linked = [e.get("recording_sid") for e in events if e.get("event") == CARRIER_RECORDING_READY]
        if not events:  # the call's stream never opened here: no session to link it to
            log.warning("session %s: the %s recording %s has no session here to be linked to", session_id,
                        carrier, recording.recording_sid)
        elif recording.recording_sid in linked or len(linked) >= MAX_LINKED:
            # Linked already (a callback signed again, or replayed once its record expired), or past
            # the few a call can have: the session's artifacts list each recording once, and a few.
            log.warning("session %s: the %s recording %s is not linked again (%d linked)", session_id, carrier,
                        recording.recording_sid, len(linked))
        elif carrier_copy_kept(app, carrier, requested_release(events)):
            timeline.note(session_id, CARRIER_RECORDING_READY, **recording.timeline_fields())
        else:  # a release rule keeps nothing of this session: not linked, named for deletion at the carrier
            log.warning("session %s: the %s recording %s is not linked: its recording policy is not on",
                        session_id, carrier, recording.recording_sid)
            timeline.note(session_id, CARRIER_RECORDING_NOT_KEPT, carrier=carrier,
                          recording_sid=recording.recording_sid, reason="the session's recording policy is not on")
    elif recording.status in ("absent", "failed"):
        timeline.note(session_id, "carrier_recording_absent", carrier=carrier, recording_sid=recording.recording_sid)
    return Response(status_code=204)


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _xml(body: str) -> Response:
    return Response(f'<?xml version="1.0" encoding="UTF-8"?>\n{body}', media_type=XML)
