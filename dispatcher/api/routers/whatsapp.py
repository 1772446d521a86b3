"""Meta's WhatsApp Business calling webhook (the call itself: dispatcher/whatsapp/calls.py).

    GET  /phone/whatsapp   the webhook's verification: hub.mode=subscribe, hub.verify_token, hub.challenge
    POST /phone/whatsapp   Meta's events, signed X-Hub-Signature-256 with the app secret

The signature is checked on the raw body before anything is read from it: unsigned is 401, badly
signed 403, and nothing has started. A later event another region sent on (it does not hold the call:
dispatcher/whatsapp/elsewhere.py) carries that region's signature instead, checked before it gets
here, and is answered signed. Each call event is taken once across replicas (Meta retries a webhook
until it gets a 200); the answer comes at once, the call being handled in the background."""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from botchannel.json_input import parse_json
from dispatcher.api.dependencies import app_state
from dispatcher.api.region_relay import relayed_by
from dispatcher.api.routers.regions import signed_answer
from dispatcher.errors import ApiError, Utf8JSONResponse
from dispatcher.store.client import StoreUnavailable
from dispatcher.whatsapp.calls import CallsBusy, WhatsAppCalls
from dispatcher.whatsapp.events import call_events
from dispatcher.whatsapp.signature import HEADER, check_signature

MAX_CHALLENGE_CHARS = 256
STORE_RETRY_SECONDS = 5
log = logging.getLogger("dispatcher.whatsapp")
router = APIRouter(tags=["phone"])


def whatsapp_calls(request: Request) -> WhatsAppCalls:
    calls = app_state(request).whatsapp
    if calls is None:
        raise ApiError(404, "whatsapp_not_configured", "this dispatcher takes no WhatsApp calls: set "
                       "WHATSAPP_ACCESS_TOKEN, WHATSAPP_APP_SECRET, WHATSAPP_VERIFY_TOKEN and WHATSAPP_NUMBERS "
                       "(docs/phone.md, WhatsApp calls)")
    return calls


@router.get("/phone/whatsapp", summary="WhatsApp webhook verification (Meta's hub.challenge)")
async def verify(request: Request) -> Response:
    calls = whatsapp_calls(request)
    query = request.query_params
    mode, token, challenge = query.get("hub.mode"), query.get("hub.verify_token"), query.get("hub.challenge")
    if mode != "subscribe" or not token or not challenge:
        raise ApiError(400, "invalid_request", "expected Meta's webhook verification: hub.mode=subscribe, "
                       "hub.verify_token and hub.challenge")
    if not hmac.compare_digest(token.encode(), calls.settings.verify_token.encode()):
        raise ApiError(403, "verify_token_mismatch", "hub.verify_token is not this dispatcher's "
                       "WHATSAPP_VERIFY_TOKEN: type the same value in the Meta app's webhook settings")
    if len(challenge) > MAX_CHALLENGE_CHARS or not challenge.isascii() or not challenge.isprintable():
        raise ApiError(400, "invalid_request", f"hub.challenge: at most {MAX_CHALLENGE_CHARS} printable characters")
    return PlainTextResponse(challenge)


@router.post("/phone/whatsapp", summary="WhatsApp calling webhook (Meta's signed call events)")
async def webhook(request: Request) -> Response:
    calls = whatsapp_calls(request)
    body = await request.body()
    relayed_from = relayed_by(request.scope)  # a region's signature, checked (dispatcher/api/region_relay.py)
    if relayed_from is None:
        check_signature(calls.settings.app_secret, body, request.headers.get(HEADER))
    try:
        events = call_events(parse_json(body.decode("utf-8")))
    except ValueError as exc:  # UnicodeDecodeError and JSON's errors are ValueErrors too
        raise ApiError(400, "invalid_webhook", f"not a WhatsApp Business webhook: {str(exc)[:200]}") from None
    if events and app_state(request).phone.draining:  # a deploy is replacing this replica: Meta retries
        raise ApiError(503, "draining", "this replica is being replaced: the webhook is retried elsewhere",
                       retry_after=STORE_RETRY_SECONDS)
    try:
        taken = await calls.take(events, relayed_from)
    except StoreUnavailable:
        log.warning("whatsapp: a webhook was refused: the store did not answer, so a repeat could not be ruled out")
        raise ApiError(503, "store_unavailable", "this webhook cannot be checked against repeats right now",
                       retry_after=STORE_RETRY_SECONDS) from None
    except CallsBusy as exc:
        log.warning("whatsapp: a webhook was refused: %s", exc)
        raise ApiError(503, "whatsapp_busy", "this replica is handling as many WhatsApp calls as it can: the webhook "
                       "is retried", retry_after=STORE_RETRY_SECONDS) from None
    answer = {"events": len(events), "taken": taken}
    if relayed_from is not None:  # the relaying region believes an answer only signed by a region
        return signed_answer(request, app_state(request), answer)
    return Utf8JSONResponse(answer)
