"""Verifying a provider-signed identity token (a JWT) against the issuer's published keys.

The signature is checked by google-auth (`google.auth.jwt.decode`, already the dispatcher's for
Compute Engine credentials), RS256 only, with the key the token's `kid` names from the issuer's
JSON Web Key Set. The set is fetched over HTTP (an endpoint override per provider, so tests use a
local fake) and cached: refetched after `MAX_AGE_SECONDS`, or for a key id it does not hold (the
issuer rotated), but never more than once per `MIN_REFETCH_SECONDS`, so tokens naming made-up key
ids cannot make the dispatcher hammer the issuer. An unreachable issuer keeps the keys it had.

A token is admitted once (dispatcher/channel/identity.py, `OneUse`): `token_seen` names it by the
hash of what it signs for as long as it is valid, and a token valid for longer than `MAX_TOKEN_SECONDS` (Google's
last an hour, Fly's ten minutes) is refused, so the record always outlives what it guards.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

import google.auth.exceptions
import google.auth.jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

from dispatcher.channel.identity import ProofSeen
from dispatcher.observability.log_text import shown
from dispatcher.outbound.http_client import HttpClient, HttpError

MAX_AGE_SECONDS = 3600.0  # issuers rotate keys over days, publishing the next one well ahead
MIN_REFETCH_SECONDS = 30.0
FETCH_TIMEOUT_SECONDS = 5.0
FETCH_ATTEMPTS = 2
MAX_KEYS = 50  # Google publishes 2-3
CLOCK_SKEW_SECONDS = 30
MAX_TOKEN_SECONDS = 3600  # the longest an identity token may stay valid from now (Google's: one hour)


class IdentityRefused(Exception):
    """The token is not one the issuer signed for this audience, now (the reason is for the log)."""


class JsonWebKeys:
    """An issuer's RSA signing keys by key id, as PEM, fetched from `url` and cached."""

    def __init__(self, url: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self._client = HttpClient(timeout=FETCH_TIMEOUT_SECONDS)
        self._keys: dict[str, str] = {}
        self._fetched_at: float | None = None  # the last fetch that got the keys
        self._asked_at: float | None = None  # the last fetch, answered or not
        self._lock = asyncio.Lock()
        self._clock = clock

    async def pem(self, kid: str) -> str | None:
        if self._fresh() and kid in self._keys:
            return self._keys[kid]
        async with self._lock:  # one fetch at a time; the others read what it got
            if not (self._fresh() and kid in self._keys) and self._may_fetch():
                await self._fetch()
        return self._keys.get(kid)

    def _fresh(self) -> bool:
        return self._fetched_at is not None and self._clock() - self._fetched_at < MAX_AGE_SECONDS

    def _may_fetch(self) -> bool:
        return self._asked_at is None or self._clock() - self._asked_at >= MIN_REFETCH_SECONDS

    async def _fetch(self) -> None:
        self._asked_at = self._clock()
        for attempt in range(FETCH_ATTEMPTS):
            try:
                response = await self._client.request("GET", self.url)
                if response.status_code == 200:
                    self._keys = _rsa_keys(response.json())
                    self._fetched_at = self._clock()
                    return
            except (HttpError, ValueError, KeyError, TypeError):
                pass
            if attempt + 1 < FETCH_ATTEMPTS:
                await asyncio.sleep(0.5)
        # Unreachable or unreadable: the keys already held still verify, and the issuer is asked
        # again no sooner than the refetch bound (a token signed with a key not held is refused).

    async def aclose(self) -> None:
        await self._client.aclose()


def _rsa_keys(document: Mapping[str, Any]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for jwk in list(document["keys"])[:MAX_KEYS]:
        if jwk.get("kty") != "RSA" or jwk.get("alg", "RS256") != "RS256" or jwk.get("use", "sig") != "sig":
            continue
        numbers = RSAPublicNumbers(_int(jwk["e"]), _int(jwk["n"]))
        pem = numbers.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        keys[str(jwk["kid"])] = pem.decode()
    return keys


def _int(b64url: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(b64url + "=" * (-len(b64url) % 4)), "big")


async def verified_claims(
    token: str, keys: JsonWebKeys, *, issuers: Collection[str], audience: str,
    max_seconds: float | None = MAX_TOKEN_SECONDS,
) -> Mapping[str, Any]:
    """The claims of `token` if `keys`' issuer signed it (RS256) for `audience` (with any fragment: a
    bot's per-dial nonce), it is within its
    `iat`/`nbf`/`exp` (±`CLOCK_SKEW_SECONDS`) and its `iss` is one of `issuers`; else IdentityRefused.
    `max_seconds=None` lifts the bound on its remaining life (for a token never admitted once only)."""
    try:
        header = google.auth.jwt.decode_header(token)  # type: ignore[no-untyped-call]
    except (google.auth.exceptions.GoogleAuthError, ValueError, TypeError) as exc:
        raise IdentityRefused("not a JWT") from exc
    kid = header.get("kid")
    if header.get("alg") != "RS256" or not isinstance(kid, str):
        raise IdentityRefused(f"signature algorithm {header.get('alg')!r} is not RS256 with a key id")
    pem = await keys.pem(kid)
    if pem is None:
        raise IdentityRefused("signed with a key the issuer does not publish (or its keys are unreachable)")
    try:
        claims = google.auth.jwt.decode(  # type: ignore[no-untyped-call]
            token, certs={kid: pem}, audience=None, clock_skew_in_seconds=CLOCK_SKEW_SECONDS
        )
    except (google.auth.exceptions.GoogleAuthError, ValueError, TypeError) as exc:
        raise IdentityRefused(_first_line(exc)) from exc
    aud = claims.get("aud")
    # A bot asks for `<audience>#<fragment of its dial>` (bot/identity.py): a fresh token per dial.
    if not isinstance(aud, str) or (aud != audience and not aud.startswith(audience + "#")):
        raise IdentityRefused("Token has wrong audience")
    if claims.get("iss") not in issuers:
        raise IdentityRefused("issued by another issuer")
    expires = claims.get("exp")
    if not isinstance(expires, int | float):
        raise IdentityRefused("no expiry")
    if max_seconds is not None and expires - time.time() > max_seconds + CLOCK_SKEW_SECONDS:
        raise IdentityRefused(f"valid for longer than {max_seconds:g} s (it would outlive its one-use record)")
    not_before = claims.get("nbf")
    if isinstance(not_before, int | float) and not_before - CLOCK_SKEW_SECONDS > time.time():
        raise IdentityRefused("not valid yet")
    return dict(claims)


def token_seen(token: str | None) -> ProofSeen | None:
    """The token's one-use record: its hash, kept while it is valid (its own `exp`, read unverified:
    a forged `exp` fails the signature check that follows; bounded by `MAX_TOKEN_SECONDS`)."""
    if token is None:
        return None
    try:
        expires = google.auth.jwt.decode(token, verify=False).get("exp")  # type: ignore[no-untyped-call]
    except (google.auth.exceptions.GoogleAuthError, ValueError, TypeError, AttributeError):
        expires = None
    left = expires - time.time() if isinstance(expires, int | float) else MAX_TOKEN_SECONDS
    seconds = min(max(left, 0.0), MAX_TOKEN_SECONDS) + CLOCK_SKEW_SECONDS
    # Named by what it signs (header and claims, verbatim), not by its text: the signature's
    # base64url spells the same bytes several ways (the last character's unused bits), and any
    # spelling verifies, so a record keyed on the text would admit each spelling once.
    signed = token.rsplit(".", 1)[0]
    return ProofSeen("jwt:" + hashlib.sha256(signed.encode()).hexdigest(), seconds)


def mismatch(what: str, claims: Mapping[str, Any], expected: Mapping[str, str]) -> str | None:
    """Why `claims` do not name the machine `expected` describes (the first claim that differs), or None."""
    for claim, value in expected.items():
        if claims.get(claim) != value:
            return f"{what}'s {claim} is {shown(claims.get(claim))}, not {value}"
    return None


def _first_line(exc: Exception) -> str:
    """google-auth's reason (wrong audience, expired, bad signature), without the values it quotes."""
    text = str(exc).split("\n", 1)[0]
    with contextlib.suppress(ValueError):
        text = text[: text.index(",")] if "audience" in text else text
    return text[:120]
