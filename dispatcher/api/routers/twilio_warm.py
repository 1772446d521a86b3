"""Twilio's requests for a warm transfer's call to the person (dispatcher/phone/twilio_warm.py):

    POST /phone/twilio/warm/{session_id}/{transfer}/{token}/status    CallStatus: ringing, in-progress, busy, …
    POST /phone/twilio/warm/{session_id}/{transfer}/{token}/briefed   the briefing said: answered with TwiML

Each is checked before it counts: `X-Twilio-Signature` (TWILIO_AUTH_TOKEN, over the address the create
gave Twilio), the URL's MAC of the session, transfer and creation time (handed out with that create only;
past the transfer's life, 403 `callback_expired`, but 204 for the call's final `completed`), and once across
every replica (a replay is refused, as a call webhook's is). Only the transfer's own call counts: a body
whose `To`/`From` are not the create's, or that names another call than the first one its callbacks named,
is ignored (204; at `briefed`, a hang-up). What each says is kept in the store for the replica waiting on
the transfer, whichever replica Twilio reached. A body is claimed once, across every replica, before it acts:
of two copies only the first acts; a later copy at `status` is answered 204 and at `briefed` gets the decision
the first recorded again (403 `replayed` while none is). Only a store that does not answer before anything was
kept is a 503 (the claim given back, so that a carrier's retry counts; Twilio retries none by default).
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response

from dispatcher.api.dependencies import app_state
from dispatcher.api.routers.webhooks import UNTIMED_SIGNATURE_SECONDS, claimed, release_claim
from dispatcher.api.twilio_signed import signed_form
from dispatcher.errors import ApiError
from dispatcher.phone.twilio_warm import (
    BRIEFED_CALLBACK,
    CALLBACK_ROUTE,
    HANG_UP,
    STATUS_CALLBACK,
    CallbackUrl,
    TwilioWarm,
    callback_url,
    warm_prefix,
)
from dispatcher.store.client import StoreUnavailable

router = APIRouter(prefix=warm_prefix("twilio"), include_in_schema=False)
TRANSFER = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class WarmCallback:
    """A callback whose signature and URL were checked, not yet marked seen (`once`, for `seconds`)."""
    request: Request
    warm: TwilioWarm
    key: bytes
    session_id: str
    transfer: str
    url: CallbackUrl
    form: dict[str, str]
    sid: str  # the call it names, as the carrier's updates name it
    once: str
    seconds: float

    def own_numbers(self) -> bool:
        return self.url.names(self.key, self.transfer, self.form.get("To", ""), self.form.get("From", ""))

    async def claim(self) -> bool:
        """Whether this copy of the body is the first (at any replica, any route): only that one acts. 503 if
        the store cannot say."""
        return await claimed(self.request, self.once, self.seconds)

    async def unacted(self) -> ApiError:
        """The claim given back, as nothing was kept (so that the carrier's retry counts): the 503 to answer."""
        await release_claim(self.request, self.once)
        return ApiError(503, "store_unavailable", "the store did not keep what this callback said: nothing was "
                        "acted on", retry_after=1)


@router.post(f"{CALLBACK_ROUTE}/{STATUS_CALLBACK}")
async def consult_status(request: Request, session_id: str, transfer: str, token: str) -> Response:
    return await heard_status(await _verified(request, session_id, transfer, token))


@router.post(f"{CALLBACK_ROUTE}/{BRIEFED_CALLBACK}")
async def consult_briefed(request: Request, session_id: str, transfer: str, token: str) -> Response:
    return await briefed_answer(await _verified(request, session_id, transfer, token))


def checked_url(key: bytes, carrier: str, session_id: str, transfer: str, token: str) -> CallbackUrl:
    """The callback URL's token, verified (either carrier's routes); 403 `callback_forged` otherwise. Whether it
    expired is each route's to say (`unexpired`): a late final status is answered, not refused."""
    url = callback_url(key, carrier, session_id, transfer, token) if TRANSFER.fullmatch(transfer) else None
    if url is None:
        raise ApiError(403, "callback_forged", "this callback URL was not handed out for that transfer")
    return url


def unexpired(url: CallbackUrl) -> None:
    if url.expired(time.time()):
        raise ApiError(403, "callback_expired", "this callback URL's transfer is over: its callbacks are no longer "
                       "heard")


async def heard_status(callback: WarmCallback) -> Response:
    """A verified status callback, Twilio's or Telnyx's (routers/telnyx_warm.py). Another call's is ignored; a
    given-up transfer's call is ended."""
    status = callback.form.get("CallStatus", "")
    if status == "completed" and callback.url.expired(time.time()):
        # The person's call ending after its transfer's records are gone: the normal end of a joined call, so
        # answered 204 (a 403 is an error in the carrier's debugger), and nothing is left to act on.
        return Response(status_code=204)
    unexpired(callback.url)
    if not callback.own_numbers() or not await callback.claim():
        return Response(status_code=204)  # not this transfer's call, or a copy another request acts on
    try:
        ending = await callback.warm.heard(callback.transfer, callback.sid, status)
    except StoreUnavailable:
        raise await callback.unacted() from None
    if ending:
        await callback.warm.end_given_up(callback.session_id, callback.transfer, callback.sid, status)
    return Response(status_code=204)


async def briefed_answer(callback: WarmCallback) -> Response:
    """A verified `<Redirect>` after the briefing: the conference's TwiML (or TeXML), else a hang-up. A copy of
    one claimed already (the carrier's duplicate, maybe the one it waits on) is answered what was decided."""
    unexpired(callback.url)
    if not callback.own_numbers():
        return Response(HANG_UP, media_type="application/xml")  # not this transfer's call: nothing recorded
    if not await callback.claim():
        return Response(await _decided(callback), media_type="application/xml")
    twiml: str | None = None
    try:
        twiml = await callback.warm.briefed(callback.transfer, callback.sid, callback.form.get("CallStatus", ""))
    except StoreUnavailable:
        # The outcome's write may have landed before the store stopped answering: once it is recorded, the
        # call is answered what was decided (a 503 would end it while the caller is joined), else 503.
        with contextlib.suppress(StoreUnavailable):
            twiml = await callback.warm.decided(callback.transfer, callback.sid)
        if twiml is None:
            raise await callback.unacted() from None
    return Response(twiml, media_type="application/xml")


async def _decided(callback: WarmCallback) -> str:
    """The decision a briefing's first copy recorded, for a copy of it; 403 `replayed` while none is."""
    try:
        twiml = await callback.warm.decided(callback.transfer, callback.sid)
    except StoreUnavailable:
        raise ApiError(503, "store_unavailable", "the store did not say what this briefing decided",
                       retry_after=1) from None
    if twiml is None:
        raise ApiError(403, "replayed", "this webhook was already answered, and what it decides is not yet known")
    return twiml


async def _verified(request: Request, session_id: str, transfer: str, token: str) -> WarmCallback:
    state = app_state(request)
    warm, settings = state.phone.twilio_warm, state.phone.settings
    if warm is None or not settings.twilio_auth_token:
        raise ApiError(404, "not_found", "this dispatcher makes no warm transfers through Twilio")
    form, signature = await signed_form(request, state, settings.twilio_auth_token)
    url = checked_url(settings.token_key, "twilio", session_id, transfer, token)
    return WarmCallback(request, warm, settings.token_key, session_id, transfer, url, form, form["CallSid"],
                        f"twilio-warm:{signature}", UNTIMED_SIGNATURE_SECONDS)
