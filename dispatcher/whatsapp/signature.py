"""Meta's webhook signature: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, keyed with
the app secret>`. Checked on the bytes as they arrived, before anything is parsed or started."""

from __future__ import annotations

import hashlib
import hmac

from dispatcher.errors import ApiError

HEADER = "x-hub-signature-256"
PREFIX = "sha256="


def sign(app_secret: str, body: bytes) -> str:
    """The header's value for `body` (what Meta sends; the tests' fake signs with it too)."""
    return PREFIX + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def check_signature(app_secret: str, body: bytes, header: str | None) -> None:
    """401 when the header is missing, 403 when it does not sign this body with this app's secret."""
    if not header:
        raise ApiError(401, "signature_missing", "no X-Hub-Signature-256: only Meta's signed calling webhooks are "
                       "taken here (its app secret is WHATSAPP_APP_SECRET)", extra={})
    if not hmac.compare_digest(header.strip().encode(), sign(app_secret, body).encode()):
        raise ApiError(403, "signature_invalid", "X-Hub-Signature-256 does not sign this body with the app's secret: "
                       "check that WHATSAPP_APP_SECRET is the app secret of the Meta app that sends the webhook",
                       extra={})
