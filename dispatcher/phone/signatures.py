"""The carriers' own request signatures, checked before anything is started for a call.

- Twilio (`X-Twilio-Signature`): base64 HMAC-SHA1, keyed with the account's auth token, of the
  full URL followed by every POST parameter as key + value, sorted by key. Twilio signs its
  Media Streams WebSocket upgrade the same way (the `wss://` URL, no parameters).
- Plivo (`X-Plivo-Signature-V3` + `X-Plivo-Signature-V3-Nonce`): base64 HMAC-SHA256, keyed with
  the auth token, of `<url>?<sorted query>` (a `.` after a non-empty query when there is a body),
  then the POST parameters as key + value sorted by key, then `.` + nonce. The header may hold
  several comma-separated signatures (one per token while a token is rotated).
- Telnyx (`telnyx-signature-ed25519` + `telnyx-timestamp`): an Ed25519 signature, by Telnyx's
  key (the account's public key, base64), of `<timestamp>|<raw body>`; older than
  `TELNYX_TOLERANCE_SECONDS` is refused as expired, a signature in any base64 spelling but the
  canonical one as forged (so one signature is one replay record).

Twilio's and Plivo's schemes carry no time: a captured request stays valid. The webhook routes
refuse a second sighting of the same signature at any replica (dispatcher/api/routers/webhooks.py;
keyed on the signature alone, not on `CallSid`, the nonce or the URL as sent: boundaries in the
signed text can move, and Plivo's query is signed normalised, so many URLs share one signature),
and the one-time path token (dispatcher/phone/tokens.py, which remembers its own with `Replays`)
bounds what any webhook can open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from dispatcher.numbers import bounded_digits

TELNYX_TOLERANCE_SECONDS = 300.0  # Telnyx's own SDKs' default tolerance
MAX_TIMESTAMP_DIGITS = 12  # unix seconds have 10 digits until the year 2286
REPLAY_MEMORY_SECONDS = 600.0
MAX_REMEMBERED = 100_000

Params = Iterable[tuple[str, str]]


def twilio_signature(auth_token: str, url: str, params: Params = ()) -> str:
    """A repeated parameter counts once per distinct value, values sorted (Twilio's SDKs)."""
    values: dict[str, set[str]] = {}
    for key, value in params:
        values.setdefault(key, set()).add(value)
    signed = url + "".join(key + value for key in sorted(values) for value in sorted(values[key]))
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def twilio_valid(auth_token: str, url: str, params: Params, presented: str | None) -> bool:
    if not presented:
        return False
    return hmac.compare_digest(twilio_signature(auth_token, url, list(params)).encode(), presented.encode())


def plivo_v3_signature(auth_token: str, url: str, nonce: str, params: Params = ()) -> str:
    parts = urlsplit(url)
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    query = "&".join(f"{k}={v}" for k, v in sorted(parse_qsl(parts.query, keep_blank_values=True)))
    body = sorted(params, key=lambda kv: kv[0])
    signed = base
    if query or body:
        signed += "?" + query
    if query and body:
        signed += "."
    signed += "".join(key + value for key, value in body)
    digest = hmac.new(auth_token.encode(), f"{signed}.{nonce}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def plivo_valid(auth_token: str, url: str, nonce: str | None, params: Params, presented: str | None) -> str | None:
    """The signature that matched (the one-use record's key), or None. The header's other entries
    are anyone's to add, so the record is keyed on the computed one, never on the header's text."""
    if not presented or not nonce:
        return None
    expected = plivo_v3_signature(auth_token, url, nonce, list(params))
    matched = any(hmac.compare_digest(expected.encode(), one.strip().encode()) for one in presented.split(","))
    return expected if matched else None


class TelnyxKey:
    """Telnyx's Ed25519 public key (base64, as the portal shows it)."""

    def __init__(self, public_key_b64: str) -> None:
        try:
            raw = base64.b64decode(public_key_b64, validate=True)
            self._key = Ed25519PublicKey.from_public_bytes(raw)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("TELNYX_PUBLIC_KEY is not a base64 Ed25519 public key") from exc

    def valid(
        self,
        body: bytes,
        signature_b64: str | None,
        timestamp: str | None,
        *,
        now: float | None = None,
        tolerance: float = TELNYX_TOLERANCE_SECONDS,
    ) -> str | None:
        """None when valid; else why not ("missing", "expired", "forged")."""
        if not signature_b64 or not timestamp:
            return "missing"
        sent = bounded_digits(timestamp, MAX_TIMESTAMP_DIGITS)
        if sent is None:
            return "forged"
        try:
            signature = base64.b64decode(signature_b64, validate=True)
        except (ValueError, binascii.Error):
            return "forged"
        if base64.b64encode(signature).decode() != signature_b64:
            # The decoder ignores the last symbol's unused bits: 16 spellings of one signature, each a
            # new replay-record key. Only the canonical spelling (the one Telnyx sends) is accepted.
            return "forged"
        if abs((time.time() if now is None else now) - sent) > tolerance:
            return "expired"
        try:
            self._key.verify(signature, timestamp.encode() + b"|" + body)
        except InvalidSignature:
            return "forged"
        return None


class Replays:
    """Remembers what was seen (a signature, a nonce, a token id) for a while: bounded, oldest
    first. `first_sighting` is synchronous, so two concurrent requests cannot both pass."""

    def __init__(self, memory_seconds: float = REPLAY_MEMORY_SECONDS, clock: Callable[[], float] = time.monotonic):
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._memory = memory_seconds
        self._clock = clock

    def first_sighting(self, key: str) -> bool:
        now = self._clock()
        while self._seen and (next(iter(self._seen.values())) <= now or len(self._seen) >= MAX_REMEMBERED):
            self._seen.popitem(last=False)
        if key in self._seen:
            return False
        self._seen[key] = now + self._memory
        return True
