"""What one region asks another is signed with the shared `REGION_SECRET`; what no region sent is refused.

    Voicefleet-Region: <sender>          Voicefleet-Region-Time: <unix milliseconds>
    Voicefleet-Region-Nonce: <32 hex, random>.h1-<hex SHA-256 of the covered headers>
    Voicefleet-Region-Signature: v1=<hex HMAC-SHA256 over sender, receiver, method, path, time, nonce,
                                     body digest>

The nonce carries the digest of the headers a region acts on (`COVERED_HEADERS`: the caller's key
and Idempotency-Key, and the regions' own marks), so it is signed with the rest: a key or a spill
mark changed after signing is refused. Inside the nonce, not beside it, because a region of the
release before reads the nonce as opaque signed text: both releases check each other's requests
during a rolling deploy. A nonce without the digest (a region of that release) is still taken.

The receiver is signed in, so a request made for one region is nothing at another; the time must be
within `SKEW_SECONDS` of the receiver's clock; and each signature is taken once across the
receiving region's replicas (its store's one-time records), so a captured request cannot be sent
again. An answer a region acts on is signed too (`answer_signature`, over the request's signature
and the answer's body), so whoever answers at a peer's URL without the secret is not believed.
Both are signed with `REGION_SECRET` and checked against it or, during a change of secret, the
accepted one. docs/regions.md ("What regions ask each other").
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping, Sequence

from dispatcher.errors import ApiError
from dispatcher.numbers import bounded_digits
from dispatcher.regions.config import Regions
from dispatcher.store.coordination import OneTimeUse

SENDER = "voicefleet-region"
TIME = "voicefleet-region-time"
SIGNATURE = "voicefleet-region-signature"
NONCE = "voicefleet-region-nonce"  # two identical requests in one millisecond are still two
ANSWER_SIGNATURE = "voicefleet-region-answer"
SKEW_SECONDS = 30.0
VERSION = "v1="
RELAYED_BY = "voicefleet-relayed-by"  # set on a relayed request: it is never relayed again
SPILLED = "voicefleet-spilled"  # "<region it arrived at> <why>", on a spilled start relayed to its region
# "1", on a start whose SIP edge's secret the region it arrived at checked (each region's edge has its
# own SIP_EDGE_SECRET): the region it is relayed to takes its `sip_trunk` on that word.
EDGE_VOUCHED = "voicefleet-edge-vouched"
# What a region reads off a relayed request besides its path and body: whose it is, its key, and
# the regions' own word. (Not `traceparent`: a front door may rewrite it, and it grants nothing.)
COVERED_HEADERS = ("authorization", "idempotency-key", SPILLED, RELAYED_BY)
# Covered too, when sent: a region of the release before digests COVERED_HEADERS alone, so its
# relays and this release's still check each other during a rolling deploy.
COVERED_WHEN_SENT = (EDGE_VOUCHED,)
HEADERS_MARK = ".h1-"
MAX_TIME_DIGITS = 15  # unix milliseconds have 13 digits until the year 2286


def signed_path(path: str, query: str) -> str:
    """The request target a signature covers: the path as read (decoded), then `?` and the query as
    it came, if any. Both ends build it here, the sender from what it relays, the receiver from
    what it got."""
    return path + (f"?{query}" if query else "")


def _mac(secret: bytes, sender: str, receiver: str, method: str, path: str, millis: str, nonce: str,
         body: bytes) -> str:
    text = "\n".join((sender, receiver, method.upper(), path, millis, nonce, hashlib.sha256(body).hexdigest()))
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()


def headers_digest(headers: Mapping[str, str]) -> str:
    """The digest of `COVERED_HEADERS` (names in any case, a repeated one by its first value, a
    missing one as empty), and of those of `COVERED_WHEN_SENT` present, a nonce carries."""
    named: dict[str, str] = {}
    for name, value in headers.items():
        named.setdefault(name.lower(), value)
    text = "\n".join(f"{name}:{named.get(name, '')}" for name in COVERED_HEADERS)
    text += "".join(f"\n{name}:{named[name]}" for name in COVERED_WHEN_SENT if name in named)
    return hashlib.sha256(text.encode()).hexdigest()


def answer_signature(secret: bytes, request_signature: str, body: bytes) -> str:
    """What a region's answer carries: its body bound to the request it answers."""
    text = "\n".join(("answer", request_signature, hashlib.sha256(body).hexdigest()))
    return VERSION + hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()


def answer_is_signed(secrets_: Sequence[bytes], request_headers: Mapping[str, str],
                     answer_headers: Mapping[str, str], body: bytes) -> bool:
    """Whether the answer was signed with one of `secrets_` (Regions.secrets) for this request."""
    given = answer_headers.get(ANSWER_SIGNATURE, "").encode()
    return any(hmac.compare_digest(given, answer_signature(secret, request_headers.get(SIGNATURE, ""), body).encode())
               for secret in secrets_)


class RegionSigner:
    def __init__(self, regions: Regions, clock: Callable[[], float] = time.time) -> None:
        self._regions = regions
        self._clock = clock

    def headers(self, receiver: str, method: str, path: str, body: bytes = b"",
                sent: Mapping[str, str] | None = None) -> dict[str, str]:
        """The headers that sign a request from this region to `receiver` (`path` with its query),
        and the `COVERED_HEADERS` of those it is `sent` with."""
        millis = str(int(self._clock() * 1000))
        nonce = secrets.token_hex(16) + HEADERS_MARK + headers_digest(sent or {})
        mac = _mac(self._regions.secret, self._regions.here, receiver, method, path, millis, nonce, body)
        return {SENDER: self._regions.here, TIME: millis, NONCE: nonce, SIGNATURE: VERSION + mac}


class RegionVerifier:
    """Refuses, as 401 `region_unauthenticated` with the reason, whatever another region did not
    send to this one, recently and once."""

    def __init__(self, regions: Regions, once: OneTimeUse, clock: Callable[[], float] = time.time) -> None:
        self._regions = regions
        self._once = once
        self._clock = clock

    async def sender(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> str:
        """The region that sent this request (`path` with its query, as received; `headers` with
        lower-case names, a repeated one by its first value, as the routes read them)."""
        if not self._regions.several:
            raise ApiError(404, "not_found", "this dispatcher runs as one region (REGION is not set)")
        sender, millis, signature = headers.get(SENDER, ""), headers.get(TIME, ""), headers.get(SIGNATURE, "")
        nonce = headers.get(NONCE, "")
        if not sender or not millis or not signature or not nonce:
            raise _refused("a region request needs the Voicefleet-Region headers, signed with REGION_SECRET")
        if sender == self._regions.here or sender not in self._regions.urls:
            raise _refused("the sender is not another region of this deployment")
        sent_millis = bounded_digits(millis, MAX_TIME_DIGITS)
        if sent_millis is None:
            raise _refused(f"Voicefleet-Region-Time is not a time (unix ms, at most {MAX_TIME_DIGITS} digits)")
        if abs(self._clock() - sent_millis / 1000) > SKEW_SECONDS:
            raise _refused(f"the request's time is more than {SKEW_SECONDS:g} s from this region's clock")
        if not any(hmac.compare_digest(signature.encode(), (VERSION + _mac(
                secret, sender, self._regions.here, method, path, millis, nonce, body)).encode())
                for secret in self._regions.secrets):
            raise _refused("the signature does not match (REGION_SECRET differs, or the request was changed)")
        _, covers, digest = nonce.partition(HEADERS_MARK)
        if covers and not hmac.compare_digest(digest.encode(), headers_digest(headers).encode()):
            raise _refused("a header the signature covers (Authorization, Idempotency-Key, a region's mark) "
                           "was changed after signing")
        if not await self._once.first_use("region:" + signature[len(VERSION):], 2 * SKEW_SECONDS):
            raise _refused("this signed request was already taken (a replay)")
        return sender


def _refused(reason: str) -> ApiError:
    return ApiError(401, "region_unauthenticated", reason)
