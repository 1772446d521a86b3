"""Plivo's requests for a warm transfer's call to the person (dispatcher/phone/plivo_warm.py):

    POST /phone/plivo/warm/{session_id}/{transfer}/{token}/status    ring_url, hangup_url: CallStatus ringing, …
    POST /phone/plivo/warm/{session_id}/{transfer}/{token}/answer    answer_url: the briefing, then a <Redirect>
    POST /phone/plivo/warm/{session_id}/{transfer}/{token}/briefed   the briefing said: answered with <Conference>

Each is checked before it counts: Plivo's `X-Plivo-Signature-V3` with its nonce (PLIVO_AUTH_TOKEN, over the
URL handed out: https://www.plivo.com/docs/voice/concepts/signature-validation), the URL's MAC of the session,
transfer and creation time, and once across every replica (keyed on the signature). What each then does is the
Twilio routes' (routers/twilio_warm.py): only the transfer's own call counts, its numbers the create's.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from dispatcher.api.dependencies import app_state
from dispatcher.api.routers.twilio_warm import WarmCallback, briefed_answer, checked_url, heard_status, unexpired
from dispatcher.api.routers.webhooks import UNTIMED_SIGNATURE_SECONDS, plivo_signed_form
from dispatcher.errors import ApiError
from dispatcher.phone.plivo_calls import CALL_UUID
from dispatcher.phone.plivo_numbers import from_plivo
from dispatcher.phone.plivo_warm import ANSWER_CALLBACK, STATUSES, PlivoWarm
from dispatcher.phone.twilio_warm import BRIEFED_CALLBACK, CALLBACK_ROUTE, HANG_UP, STATUS_CALLBACK, warm_prefix
from dispatcher.store.client import StoreUnavailable

router = APIRouter(prefix=warm_prefix("plivo"), include_in_schema=False)


@router.post(f"{CALLBACK_ROUTE}/{STATUS_CALLBACK}")
async def consult_status(request: Request, session_id: str, transfer: str, token: str) -> Response:
    return await heard_status(await _verified(request, session_id, transfer, token))


@router.post(f"{CALLBACK_ROUTE}/{ANSWER_CALLBACK}")
async def consult_answer(request: Request, session_id: str, transfer: str, token: str) -> Response:
    """The person answered: heard as the call's `in-progress` (the transfer's own call, not given up), then
    their briefing; a hang-up otherwise."""
    callback = await _verified(request, session_id, transfer, token)
    unexpired(callback.url)
    warm = callback.warm
    assert isinstance(warm, PlivoWarm)
    if callback.form.get("CallStatus") != "in-progress" or not callback.own_numbers():
        return _xml(HANG_UP)
    if not await callback.claim():  # a copy of a fetch answered already: Plivo's retry, during the briefing only
        try:
            again = await warm.briefing_again(transfer, callback.sid)
        except StoreUnavailable:
            raise ApiError(503, "store_unavailable", "the store did not say what this call was answered",
                           retry_after=1) from None
        if again is None:
            raise ApiError(403, "replayed", "this answer fetch was answered already and its call is past the "
                           "briefing: a copy of it is not Plivo's")
        return _xml(again)
    try:
        if await warm.heard(transfer, callback.sid, "in-progress"):
            await warm.end_given_up(session_id, transfer, callback.sid, "in-progress")
            return _xml(HANG_UP)
        briefing = await warm.briefing(transfer, callback.sid)  # another call's: none
    except StoreUnavailable:
        raise await callback.unacted() from None
    return _xml(briefing or HANG_UP)


@router.post(f"{CALLBACK_ROUTE}/{BRIEFED_CALLBACK}")
async def consult_briefed(request: Request, session_id: str, transfer: str, token: str) -> Response:
    return await briefed_answer(await _verified(request, session_id, transfer, token))


async def _verified(request: Request, session_id: str, transfer: str, token: str) -> WarmCallback:
    state = app_state(request)
    warm, settings = state.phone.plivo_warm, state.phone.settings
    if warm is None:
        raise ApiError(404, "not_found", "this dispatcher makes no warm transfers through Plivo")
    form, signature = await plivo_signed_form(request)
    url = checked_url(settings.token_key, "plivo", session_id, transfer, token)
    if not CALL_UUID.fullmatch(form.get("CallUUID", "")):
        raise ApiError(400, "invalid_form", "a Plivo callback names its call by CallUUID")
    status = form.get("CallStatus", "")
    # In Twilio's words, which the steps read; numbers as the create gave them (Plivo may drop the `+`).
    form = {**form, "CallStatus": STATUSES.get(status, status), "To": from_plivo(form.get("To", "")),
            "From": from_plivo(form.get("From", ""))}
    return WarmCallback(request, warm, settings.token_key, session_id, transfer, url, form, form["CallUUID"],
                        f"plivo:{signature}", UNTIMED_SIGNATURE_SECONDS)


def _xml(text: str) -> Response:
    return Response(text, media_type="application/xml")
