"""Daily's webhook signature (https://docs.daily.co/reference/rest-api/webhooks, "hmac"): a webhook's `hmac` is a
BASE-64 secret shared with Daily; each POST carries `X-Webhook-Timestamp` and `X-Webhook-Signature`, the BASE-64
HMAC-SHA256, keyed with the decoded secret, of the timestamp, a `.` and the raw body. The timestamp is also held
to a replay window: a captured request is refused once it is older than that (or from too far ahead)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from dispatcher.api_error import ApiError

SIGNATURE_HEADER = "x-webhook-signature"
TIMESTAMP_HEADER = "x-webhook-timestamp"
REPLAY_SECONDS = 300.0  # either side of this dispatcher's clock: Daily's delivery and clock skew
MIN_KEY_BYTES = 16  # Daily's own secrets are 32 bytes; a shorter one is a mistake, not a key


def webhook_key(secret: str) -> bytes:
    """The HMAC key of a webhook's `hmac` secret, as Daily decodes it; `ValueError` naming why it is none."""
    try:
        key = base64.b64decode(secret.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not BASE-64 (Daily's webhook `hmac` secret is: copy it as Daily answered "
                         "POST /webhooks)") from None
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"decodes to {len(key)} bytes; a webhook secret holds at least {MIN_KEY_BYTES}")
    return key


def sign(key: bytes, timestamp: str, body: bytes) -> str:
    """The `X-Webhook-Signature` Daily sends with `body` at `timestamp`."""
    digest = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def check_signed(key: bytes, headers: Mapping[str, str], body: bytes, now: float) -> None:
    """Nothing when Daily signed `body` within the replay window; `ApiError` 401 (unsigned) or 403 otherwise."""
    timestamp, signature = headers.get(TIMESTAMP_HEADER, ""), headers.get(SIGNATURE_HEADER, "")
    if not timestamp or not signature:
        raise ApiError(401, "signature_missing", "X-Webhook-Signature and X-Webhook-Timestamp are required: this "
                       "route takes Daily's signed webhooks only")
    if not hmac.compare_digest(sign(key, timestamp, body).encode(), signature.strip().encode()):
        raise ApiError(403, "signature_invalid", "X-Webhook-Signature does not match this request for the "
                       "webhook secret set as DAILY_WEBHOOK_SECRET")
    sent = _seconds(timestamp)
    if sent is None or abs(now - sent) > REPLAY_SECONDS:
        raise ApiError(403, "signature_expired", f"X-Webhook-Timestamp is more than {REPLAY_SECONDS:.0f} s from "
                       "this dispatcher's clock: a replayed request, or a clock to set right")


def _seconds(timestamp: str) -> float | None:
    """Unix seconds; a value in milliseconds (13 digits) is read as such."""
    if not timestamp.isdigit() or len(timestamp) > 16:
        return None
    value = int(timestamp)
    return value / 1000.0 if value >= 10**12 else float(value)
