"""Draining sized for phone calls, which the dispatcher relays for as long as they last.

A call is one WebSocket from the carrier and one from its bot, each open for the whole call
(at most `maxSessionSeconds`, after its start). A deploy must let them end: the ALB drains a
replaced task for its target group's deregistration delay before ECS stops it (docs/phone.md).
On Cloud Run the request timeout already outlives an idle bot plus its session (a call needs the
bot channel, so it is on), which covers a call.
"""

from __future__ import annotations

import pulumi

from dispatcher.phone.daily_caller_id import parse_caller_id
from stacks.config import whatsapp
from stacks.config.reader import Reader

# Secret stack config → the dispatcher's variable (docs/configuration.md, "Phone calls"). Each is
# optional: a carrier without its credential is reached with one-time tokens only (docs/phone.md).
PHONE_SECRET_KEYS = {
    "twilioAuthToken": "TWILIO_AUTH_TOKEN",
    "twilioApiKeySecret": "TWILIO_API_KEY_SECRET",  # with twilioApiKeySid: a revocable key the REST calls use
    "telnyxPublicKey": "TELNYX_PUBLIC_KEY",
    "telnyxTransferApiKey": "TELNYX_TRANSFER_API_KEY",  # the dispatcher's Telnyx API key: calls out, transfers
    "plivoAuthToken": "PLIVO_AUTH_TOKEN",
    "exotelApiKey": "EXOTEL_API_KEY",
    "exotelApiToken": "EXOTEL_API_TOKEN",
    "phoneTokenSecret": "PHONE_TOKEN_SECRET",
    "dailyDialinSecret": "DAILY_DIALIN_SECRET",
    "dailyWebhookSecret": "DAILY_WEBHOOK_SECRET",  # Daily's webhooks' hmac: a Daily dial-in call's warm transfer
    **whatsapp.SECRET_KEYS,
}
# Plain stack config → the dispatcher's variable: identifiers, no credential (written in the dispatcher's
# environment as they are). Each is optional.
CALLER_ID_KEY = "dailyDialoutCallerId"  # the purchased number a Daily transfer's person sees
PHONE_PLAIN_KEYS = {
    CALLER_ID_KEY: "DAILY_DIALOUT_CALLER_ID",
}
# The credentials that let a carrier's own requests (signed webhooks and streams) reach a bot over a
# WebSocket; Daily's dial-in and webhook secrets are not: its calls come through a Daily room. None is needed
# for `POST /start` with a WebSocket transport (or a carrier's name): any API key gets a one-time
# token for it whatever is set here (dispatcher/phone/settings.py), so the stacks count those
# sockets for every session (stacks/config/channel.py held_requests). WhatsApp's are not either: its
# calls reach a bot over WebRTC, as a browser's do; nor Telnyx's and Twilio's API keys, which the dispatcher
# calls with.
CALL_CREDENTIALS = frozenset(env for key, env in PHONE_SECRET_KEYS.items()
                             if key not in ("dailyDialinSecret", "dailyWebhookSecret", "telnyxTransferApiKey",
                                            "twilioApiKeySecret")
                             and key not in whatsapp.SECRET_KEYS)

ALB_MAX_DEREGISTRATION_DELAY = 3600  # seconds (the target group attribute's maximum)
FARGATE_MAX_STOP_TIMEOUT = 120  # seconds (ContainerDefinition.stopTimeout's maximum on Fargate)
CALL_START_MARGIN_SECONDS = 60  # a call's start (claim, or a cold launch's wait) before its audio


def deregistration_delay(max_session_seconds: int) -> int:
    """How long a replaced dispatcher task keeps relaying the calls it took."""
    return min(ALB_MAX_DEREGISTRATION_DELAY, max_session_seconds + CALL_START_MARGIN_SECONDS)


# A dispatcher deploy's own steps besides the drain: new tasks start, pass the ALB's health checks
# (healthy_threshold 2 x interval 15 s, after the 30 s grace), and ECS polls; generous, since a wait
# that ends early fails the `up` while the rollout goes on.
SERVICE_ROLLOUT_MARGIN_SECONDS = 600


def service_wait_seconds(max_session_seconds: int) -> int:
    """How long `pulumi up` must wait for the dispatcher's ECS service to be steady: a replaced task
    drains for the deregistration delay, then gets its stop timeout, and the new ones start first."""
    return deregistration_delay(max_session_seconds) + FARGATE_MAX_STOP_TIMEOUT + SERVICE_ROLLOUT_MARGIN_SECONDS


def secrets(cfg: Reader) -> dict[str, pulumi.Output[str]]:
    """The carriers' credentials that are set, env name -> value (an Output: only the secret
    stores ever see it, and the dispatcher reads it by reference)."""
    found = {env: value for key, env in PHONE_SECRET_KEYS.items()
             if (value := cfg.secret(key, required=False)) is not None}
    if ("EXOTEL_API_KEY" in found) != ("EXOTEL_API_TOKEN" in found):
        raise cfg.fail("exotelApiToken", "is set together with exotelApiKey, or neither is")
    return found


def plain(cfg: Reader) -> dict[str, str]:
    """The plain phone settings that are set, env name -> value, checked as the dispatcher checks them at
    start-up (dispatcher/phone/settings.py), so a value it would refuse fails the preview instead."""
    try:
        caller_id = parse_caller_id(cfg.plain(CALLER_ID_KEY) or "")
    except ValueError as exc:
        raise cfg.fail(CALLER_ID_KEY, str(exc)) from None
    return {PHONE_PLAIN_KEYS[CALLER_ID_KEY]: caller_id} if caller_id is not None else {}
