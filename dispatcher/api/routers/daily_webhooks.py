"""Daily's webhooks (https://docs.daily.co/reference/rest-api/webhooks), pointed at this dispatcher for a warm
transfer of a Daily dial-in call (dispatcher/phone/daily_warm.py):

    POST /phone/daily/webhook   {version, type, id, payload, event_ts}, signed with the webhook's hmac

Each is checked before it counts: `X-Webhook-Signature` over `X-Webhook-Timestamp` and the body with
DAILY_WEBHOOK_SECRET, within a replay window (dispatcher/phone/daily_signature.py); unsigned 401, forged or stale
403, and nothing kept. Daily's check when a webhook is created (or reactivated) posts a `{"test": …}` body before
the secret can be known here: it is answered 200 and acts on nothing. A `dialout.*` event of a leg this store
placed is kept there for the replica waiting on the leg (dispatcher/phone/daily_legs.py); a `calltransfer.*` one of
a cold transfer this store made goes on the session's timeline (dispatcher/phone/daily_calltransfer.py); any other
event (another application's or deployment's included) is answered 200, ignored and kept nowhere. A store that does
not answer is a 503, nothing kept, so that Daily's retry (`retryType: exponential`) counts.

With several regions, a dial-out event of a leg another region placed (its `userId` names it), or a calltransfer
event of another region's session (its id's tag), is relayed there and answered as that region answered
(dispatcher/phone/daily_hook_relay.py); one another region relayed here is checked as Daily's (and as a region's,
before it gets here), handled here and answered signed, never relayed again."""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request
from fastapi.responses import Response

from botchannel.json_input import parse_json
from dispatcher.api.dependencies import app_state
from dispatcher.api.region_relay import relayed_by
from dispatcher.api.routers.regions import signed_answer
from dispatcher.api.state import AppState
from dispatcher.errors import ApiError, Utf8JSONResponse
from dispatcher.phone.daily_hook_relay import MISROUTED
from dispatcher.phone.daily_legs import DialoutEvent
from dispatcher.phone.daily_signature import SIGNATURE_HEADER, check_signed
from dispatcher.store.unavailable import StoreUnavailable

MAX_BODY = 64 * 1024  # a dial-out event is a few hundred bytes; Daily's largest events are a few KiB
log = logging.getLogger("dispatcher.phone")
router = APIRouter(tags=["phone"])


@router.post("/phone/daily/webhook", summary="Daily's signed webhooks (dialout.*: a warm transfer's answer; "
                                           "calltransfer.*: a cold one's)")
async def daily_webhook(request: Request) -> Response:
    state = app_state(request)
    body = await request.body()
    if len(body) > MAX_BODY:
        raise ApiError(413, "body_too_large", f"a Daily webhook's body is at most {MAX_BODY} bytes")
    if SIGNATURE_HEADER not in request.headers and _is_check(body):
        return Utf8JSONResponse({"status": "ok"})  # Daily's check of the URL: nothing is read from it
    key = state.phone.settings.daily_webhook_key
    if key is None:
        raise ApiError(403, "forbidden", "DAILY_WEBHOOK_SECRET is not set on this dispatcher: set it to the hmac "
                       "secret of the Daily webhook pointed here (docs/phone.md)")
    check_signed(key, request.headers, body, time.time())
    payload = _object(body)
    relayed_from = relayed_by(request.scope)  # a region's signature, checked (dispatcher/api/region_relay.py)
    relay, dialout = state.phone.daily_relay, DialoutEvent.read(payload)
    transfers = state.phone.daily_calltransfers
    called = transfers.read(payload) if transfers is not None and dialout is None else None
    owner = None
    if relay is not None and dialout is not None:
        owner = relay.owner(dialout)
    elif relay is not None and called is not None:
        owner = relay.session_owner(called.session_id)
    if owner is not None and relayed_from is not None:  # another region's, relayed here: never sent on again
        log.warning("daily: region %s relayed an event of region %s's here: refused (REGIONS must be the same in "
                    "every region)", relayed_from, owner)
        # Not a 2xx: the relaying region answers Daily with a failure, and says why in its own log.
        return signed_answer(request, state, {"error": {"code": MISROUTED, "message": "this region's REGIONS gives "
                                                        "the leg to another region"}}, status_code=409)
    if owner is not None and relay is not None:
        return Utf8JSONResponse(await relay.send(owner, body, request.headers))
    if called is not None and transfers is not None:
        try:
            acted = await transfers.heard(called)
        except StoreUnavailable:
            raise _unkept() from None
        return _answer(request, state, relayed_from, "ok" if acted else "ignored")
    hooks = state.phone.daily_hooks
    if hooks is None:  # no Daily rooms here: nothing waits on a leg
        return _answer(request, state, relayed_from, "ignored")
    try:
        event = await hooks.heard(payload)
    except StoreUnavailable:
        raise _unkept() from None
    if event is not None:
        log.info("daily room %s: %s (dial-out %s)", event.room, event.type, event.dial)
    return _answer(request, state, relayed_from, "ok" if event is not None else "ignored")


def _unkept() -> ApiError:
    return ApiError(503, "store_unavailable", "the replicas' store did not keep this event: nothing was acted on, "
                    "send it again", retry_after=1.0)


def _answer(request: Request, state: AppState, relayed_from: str | None, status: str) -> Response:
    """The answer; signed when a region relayed the event here (it believes no other)."""
    if relayed_from is not None:
        return signed_answer(request, state, {"status": status})
    return Utf8JSONResponse({"status": status})


def _object(body: bytes) -> dict[str, object]:
    try:
        payload = parse_json(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "invalid_json", "the body is not UTF-8 JSON") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_json", "the body is not a JSON object")
    return payload


def _is_check(body: bytes) -> bool:
    """Daily's verification request: a JSON object whose one field is `test`."""
    try:
        payload = parse_json(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False
    return isinstance(payload, dict) and set(payload) == {"test"}
