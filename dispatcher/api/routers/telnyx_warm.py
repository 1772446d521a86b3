"""Telnyx's requests for a warm transfer's call to the person (dispatcher/phone/telnyx_warm.py):

    POST /phone/telnyx/warm/{session_id}/{transfer}/{token}/status    CallStatus: ringing, in-progress, busy, …
    POST /phone/telnyx/warm/{session_id}/{transfer}/{token}/briefed   the briefing said: answered with TeXML

Each is checked before it counts: Telnyx's Ed25519 signature of its timestamp and body (TELNYX_PUBLIC_KEY;
older than its tolerance: refused), the account being this dispatcher's (TELNYX_ACCOUNT_SID), the URL's MAC
of the session, transfer and creation time (handed out with that create only: the signature covers the
body, not the URL), and once across every replica and every Telnyx-signed route. A status callback counts
only when its `CallbackSource` is call progress, and `briefed` refuses any body that has one (403
`callback_not_briefing`): Telnyx signs the status callbacks with the same key, and one posted there would
otherwise decide the transfer. What each then does is the Twilio routes'
(routers/twilio_warm.py): only the transfer's own call counts.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from dispatcher.api.dependencies import app_state
from dispatcher.api.routers.twilio_warm import WarmCallback, briefed_answer, checked_url, heard_status
from dispatcher.api.routers.webhooks import TELNYX_SECONDS, telnyx_once
from dispatcher.api.telnyx_signed import telnyx_signed_form
from dispatcher.errors import ApiError
from dispatcher.phone.telnyx_calls import is_callback
from dispatcher.phone.twilio_warm import BRIEFED_CALLBACK, CALLBACK_ROUTE, STATUS_CALLBACK, warm_prefix

router = APIRouter(prefix=warm_prefix("telnyx"), include_in_schema=False)
CALL_PROGRESS = "call-progress-events"  # the `CallbackSource` of a status callback


@router.post(f"{CALLBACK_ROUTE}/{STATUS_CALLBACK}")
async def consult_status(request: Request, session_id: str, transfer: str, token: str) -> Response:
    callback = await _verified(request, session_id, transfer, token)
    if callback.form.get("CallbackSource") != CALL_PROGRESS:
        # Telnyx signs every body of the call with one key, its `<Redirect>`'s too: only a status callback
        # says how the call progresses. Another is nothing to keep (Twilio signs the URL: no such rule there).
        return Response(status_code=204)
    return await heard_status(callback)


@router.post(f"{CALLBACK_ROUTE}/{BRIEFED_CALLBACK}")
async def consult_briefed(request: Request, session_id: str, transfer: str, token: str) -> Response:
    callback = await _verified(request, session_id, transfer, token)
    if is_callback(callback.form):
        raise ApiError(403, "callback_not_briefing", "a Telnyx status or recording callback is not the briefing's "
                       "<Redirect>: post it to the status URL")
    return await briefed_answer(callback)


async def _verified(request: Request, session_id: str, transfer: str, token: str) -> WarmCallback:
    """The callback checked; the call it names is `AccountSid/CallSid`, as TeXML's REST path names it."""
    state = app_state(request)
    warm, settings = state.phone.telnyx_warm, state.phone.settings
    if warm is None or settings.telnyx_key is None:
        raise ApiError(404, "not_found", "this dispatcher makes no warm transfers through Telnyx")
    form, call, signature = await telnyx_signed_form(request, settings.telnyx_key, warm.account)
    url = checked_url(settings.token_key, "telnyx", session_id, transfer, token)
    # Spent at every Telnyx-signed route: Telnyx signs the timestamp and body, never the URL.
    return WarmCallback(request, warm, settings.token_key, session_id, transfer, url, form, call,
                        telnyx_once(signature), TELNYX_SECONDS)
