"""Who may open a call: every carrier request proves where it comes from, before anything starts.

A WebSocket upgrade is let in by, in this order: a one-time token from `POST /start` (any carrier),
presented as Pipecat Cloud takes it: `Authorization: Bearer <token>`, `?token=<token>` (what
Pipecat's WebSocket client sends) or a path segment (`/ws/{carrier}/{token}`); Twilio's
`X-Twilio-Signature` over the `wss://` URL; Exotel's Basic credential (`wss://KEY:TOKEN@host/...`);
or nothing at all on a keyless local loopback dispatcher (unless a web page of another origin
opens it: dispatcher/api/routers/carriers.py). Anything else is refused
with HTTP 403 before the handshake completes.

Past the proof: a token's call is the session of the key that asked for it (a key removed since
opens nothing), a token is spent at every replica when they share a store, and the bot's `body` is
the token's (a `?body=` in the URL only on a keyless dispatcher, as Pipecat Cloud's generic path).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botchannel.json_input import parse_json
from dispatcher.artifacts.wanted import Wanted
from dispatcher.phone.settings import PhoneSettings
from dispatcher.phone.signatures import twilio_valid
from dispatcher.phone.state import PhoneState
from dispatcher.phone.tokens import CallTokens, TokenRefused
from dispatcher.regions.config import Regions
from dispatcher.sessions.ids import Caller
from dispatcher.store.client import StoreUnavailable
from dispatcher.usage.trunk_line import TrunkLine

log = logging.getLogger("dispatcher.phone")
MAX_QUERY_BODY_BYTES = 4096  # Pipecat Cloud's cap on `?body=`
# A signed stream's record is kept for Twilio's longest call (24 h) plus a margin: the signature
# never expires, so a replay after that would open one more call (docs/phone.md says so).
SIGNED_STREAM_MEMORY_SECONDS = 25 * 3600.0


@dataclass(frozen=True)
class Admitted:
    how: str  # "token", "twilio_signature", "exotel_basic", "keyless"
    session_key: str | None = None  # from a token: the session it was minted for
    body: Mapping[str, Any] | None = None
    token_id: str | None = None  # a token's id and expiry (epoch s): spent once across replicas
    expires: float | None = None
    owner: str | None = None  # from a token: the caller id of the key that asked for the call
    handed_from: tuple[str, str] | None = None  # from a token: (the region that handed the call here, why)
    release: str | None = None  # from a token: the release its start pinned
    evaluation: bool = False  # from a token: an eval's call
    recording: Wanted | None = None  # from a token: the recording its start asked for
    call: str | None = None  # from a webhook's token: the carrier's id for the call, as it signed it
    line: TrunkLine | None = None  # from a SIP edge's token: the call's trunk and its price
    edge_call: bool = False  # from a SIP edge's token: its end is the edge's to tell


class Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def public_base(settings: PhoneSettings, headers: Mapping[str, str], scheme: str) -> str:
    """`https://host` as carriers reach us: PHONE_PUBLIC_URL, else the request's own host (a
    load balancer's X-Forwarded-Proto names the scheme the carrier used)."""
    if settings.public_url:
        return settings.public_url
    proto = headers.get("x-forwarded-proto", "").split(",")[0].strip() or scheme
    secure = proto in ("https", "wss")
    return f"{'https' if secure else 'http'}://{headers.get('host', 'localhost')}"


def handed_out_base(settings: PhoneSettings, headers: Mapping[str, str], scheme: str, regions: Regions) -> str:
    """Where what this dispatcher hands out (a stream URL, a call token's `wsUrl`, a dial-in bot's
    update URL) must reach it. With several regions, its own URL in `REGIONS`: what it mints opens
    nothing in another region, and a front door's shared name may send it to any. Else `public_base`."""
    return regions.urls[regions.here] if regions.several else public_base(settings, headers, scheme)


def carrier_base(settings: PhoneSettings, regions: Regions) -> str | None:
    """Where a carrier this dispatcher asks to call out (Twilio's create) streams the call and sends its
    callbacks: this region's URL in `REGIONS`, else PHONE_PUBLIC_URL; None without either. Never a
    request's Host: an API key's holder would pick where the callee's audio and the outcomes go."""
    return regions.urls[regions.here] if regions.several else settings.public_url


def websocket_url(base: str, path: str, query: str = "") -> str:
    scheme, _, rest = base.partition("://")
    url = f"{'wss' if scheme == 'https' else 'ws'}://{rest}{path}"
    return f"{url}?{query}" if query else url


def presented_token(path_token: str | None, headers: Mapping[str, str], query_token: str | None) -> str | None:
    """The call token, wherever the client put it, checked in Pipecat Cloud's order: the
    `Authorization: Bearer` header, then `?token=`, then the path. A token given anywhere is
    checked (a wrong one is refused, never taken as a keyless call with another session id)."""
    scheme, _, credential = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
        return credential.strip()
    if query_token is not None:
        return query_token
    return path_token


def admit_upgrade(
    settings: PhoneSettings,
    tokens: CallTokens,
    carrier: str,
    token: str | None,
    headers: Mapping[str, str],
    url: str,
) -> Admitted:
    """Checks one carrier WebSocket upgrade; `url` is the `wss://` URL the carrier dialled."""
    if token is not None:
        try:
            grant = tokens.redeem(token, carrier)
        except TokenRefused as exc:
            raise Refused(f"token_{exc.reason}") from None
        return Admitted("token", grant.session_key, grant.body, grant.token_id, grant.expires, grant.owner,
                        grant.handed_from, grant.release, grant.evaluation, grant.recording, grant.call,
                        grant.line, grant.edge_call)
    signature = headers.get("x-twilio-signature")
    if carrier == "twilio" and settings.twilio_auth_token and signature is not None:
        if not twilio_valid(settings.twilio_auth_token, url, (), signature):
            raise Refused("twilio_signature_forged")
        if not settings.twilio_signed_streams:
            raise Refused("twilio_signed_streams_off")  # the webhook's one-time token is the way in
        # Spent once, like a token: the same signed URL opens one call, at any replica.
        record = "twilio-stream:" + hashlib.sha256(signature.encode()).hexdigest()
        return Admitted("twilio_signature", token_id=record, expires=SIGNED_STREAM_MEMORY_SECONDS)
    authorization = headers.get("authorization", "")
    if carrier == "exotel" and settings.exotel_basic and authorization.lower().startswith("basic "):
        expected = base64.b64encode(settings.exotel_basic.encode()).decode()
        if not hmac.compare_digest(authorization[6:].strip().encode(), expected.encode()):
            raise Refused("exotel_credential_wrong")
        return Admitted("exotel_basic")
    if settings.keyless:
        return Admitted("keyless")
    raise Refused("no_proof")


def call_owner(state: PhoneState, admitted: Admitted) -> Caller | None:
    """A token's call is the session of the key that asked for it; any other call is the phone path's."""
    if admitted.owner is None:
        return None
    owner = state.owners(admitted.owner)
    if owner is None:  # the key was removed since it asked: its token opens nothing
        raise Refused("token_owner_unknown")
    return owner


async def spend_everywhere(state: PhoneState, admitted: Admitted) -> None:
    """A token this replica had not seen may have opened a call at another one: the store says.

    A signed stream (whose `expires` is how long its record is kept) is recorded where webhooks
    are, and refused while the store does not answer: its signature is valid at every replica and
    for ever, so this replica's memory alone would let one capture open a call at each replica
    (a token is minted by a webhook, which the store's silence refuses already)."""
    if admitted.token_id is None or admitted.expires is None:
        return
    if admitted.how == "twilio_signature":
        try:
            first = await state.webhooks.first_use(admitted.token_id, admitted.expires)
        except StoreUnavailable:
            raise Refused("store_unavailable") from None
        if not first:
            raise Refused("twilio_signature_replayed")
        return
    if not await state.spent.first_use(admitted.token_id, admitted.expires - state.clock() + 60.0):
        raise Refused("token_replayed")
    if admitted.handed_from is not None:  # its session counts under the cap itself from now on
        with contextlib.suppress(StoreUnavailable):  # else its place is given back when the token expires
            await state.handed.release(admitted.token_id)


def call_body(admitted: Admitted, query_body: str | None) -> Mapping[str, Any]:
    """The bot's `body`: the token's (from `POST /start`), or `?body=` on a keyless dispatcher
    (as Pipecat Cloud's generic endpoint, which takes it only where no auth is configured)."""
    if admitted.body:
        return admitted.body
    if query_body is None:
        return {}
    if admitted.how != "keyless":
        raise Refused("query_body_needs_a_token")  # a signed stream's body comes from its token
    if len(query_body) > MAX_QUERY_BODY_BYTES * 4 // 3 + 4:
        raise Refused("query_body_too_large")
    try:
        decoded = parse_json(base64.urlsafe_b64decode(query_body + "=" * (-len(query_body) % 4)))
    except (ValueError, binascii.Error):
        raise Refused("query_body_not_base64_json") from None
    if not isinstance(decoded, dict):
        raise Refused("query_body_not_an_object")
    return decoded
