"""One-time, short-lived tokens that a carrier presents in the WebSocket path (`/ws/{carrier}/{token}`).

Carriers cannot send headers or query strings with a media stream, so the path carries the proof:
`base64url(payload).base64url(HMAC-SHA256(payload))`, payload `{jti, exp, carrier, sid, own, body}`
(and `call`, the carrier's call id from a signed webhook)
(with several regions also `rgn`, the region it opens a call in, and `via`, a call handed there; for
a start that named them, `rel`, the release it is pinned to, `ev`, an eval's call, and `rec`, the
recording it asked for, already checked against its key's policy; for a SIP call through a priced
trunk, `tel`, its line as the SIP edge said it: dispatcher/usage/trunk_line.py).
The token is self-contained (any replica holding the key can check it) and names the session it
opens, so `POST /start` can answer the `sessionId` before any machine exists. `own` names the API
key that asked for the call by its caller id (`Caller.id`: a digest of the key's digest, already
in logs and limits, which opens nothing): the token is readable by the carrier and whoever sees
its URL, so it carries no secret; the dispatcher finds the key's owner from the id among its own
keys when the call connects. It is spent on first
use: a second presentation is refused. The spent set lives in this replica's memory, like Pipecat's
runner's (a token could be presented once per replica within its life; a shared store closes it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dispatcher.artifacts.rules import POLICIES
from dispatcher.artifacts.wanted import Wanted
from dispatcher.phone.signatures import Replays
from dispatcher.usage.trunk_line import TrunkLine, line_of

TOKEN_SECONDS = 300  # Pipecat Cloud's and the runner's: five minutes
MAX_TOKEN_BODY_BYTES = 2048  # the body rides in the URL; carriers' URL limits are a few KB


class TokenRefused(Exception):
    """Why a token opens nothing: `forged`, `expired`, `replayed`, `wrong_carrier`, `wrong_region`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CallGrant:
    """What a valid token opens: one call on one carrier, as one session, with the caller's body."""

    token_id: str
    carrier: str
    session_key: str  # the session's idempotency key: the session id follows from it
    expires: float
    body: Mapping[str, Any] = field(default_factory=dict)
    owner: str | None = None  # the asking key's caller id; None: the phone path's own sessions
    # The region whose webhook handed this call here, and why (docs/regions.md): None when it came here.
    handed_from: tuple[str, str] | None = None
    release: str | None = None  # the start's pin (`release`): None, the key's default or one drawn
    evaluation: bool = False  # an eval's call (the start's `eval`): pinned, never judged, counted apart
    # The carrier's id for the call (Twilio's CallSid), from its signed webhook: the stream that presents
    # this token must name the same call, and only then may the call be transferred (docs/phone.md).
    call: str | None = None
    recording: Wanted | None = None  # the start's `recording`: it lowers the session's policy, as a web start's
    line: TrunkLine | None = None  # a SIP call's trunk and its price, as the SIP edge said it (trunk_line.py)
    # A call a listed SIP edge started with its own credential (priced or not): its end is the edge's to tell
    # (dispatcher/observability/sip_end.py `awaits_edge_end`).
    edge_call: bool = False



def fresh_session_key() -> str:
    """A call's own session key, when no Idempotency-Key names one: its session id follows from it."""
    return f"phone-{secrets.token_urlsafe(16)}"

class CallTokens:
    def __init__(
        self, key: bytes, *, seconds: int = TOKEN_SECONDS, clock: Callable[[], float] = time.time, region: str = ""
    ) -> None:
        if len(key) < 32:
            raise ValueError("the phone token key must be at least 32 bytes")
        self._key = key
        # With several regions a token names the region that minted it and opens a call there only:
        # regions keep their own spent tokens, so one sharing the key would otherwise take it again.
        self._region = region
        self._seconds = seconds
        self._clock = clock
        self._spent = Replays(memory_seconds=seconds + 60.0)

    def mint(
        self, carrier: str, body: Mapping[str, Any] | None = None, owner: str | None = None,
        handed_from: tuple[str, str] | None = None, release: str | None = None, evaluation: bool = False,
        recording: Wanted | None = None, session_key: str | None = None, call: str | None = None,
        line: TrunkLine | None = None, edge_call: bool = False,
    ) -> tuple[str, CallGrant]:
        """`session_key`: the session's idempotency key (`POST /calls`'s Idempotency-Key); else a fresh one."""
        grant = CallGrant(
            token_id=secrets.token_urlsafe(12),
            carrier=carrier,
            session_key=session_key or fresh_session_key(),
            expires=float(int(self._clock()) + self._seconds),
            body=dict(body or {}),
            owner=owner,
            handed_from=handed_from,
            release=release,
            evaluation=evaluation,
            recording=recording,
            call=call,
            line=line,
            edge_call=edge_call,
        )
        payload: dict[str, Any] = {
            "jti": grant.token_id, "exp": int(grant.expires), "carrier": carrier, "sid": grant.session_key,
        }
        if owner is not None:
            payload["own"] = owner
        if self._region:
            payload["rgn"] = self._region
        if grant.body:
            payload["body"] = dict(grant.body)
        if handed_from is not None:
            payload["via"] = list(handed_from)
        if release is not None:
            payload["rel"] = release
        if evaluation:
            payload["ev"] = True
        if call is not None:
            payload["call"] = call
        if line is not None:
            payload["tel"] = line.as_json()
        if edge_call:
            payload["edge"] = True
        if recording is not None:
            payload["rec"] = {name: value for name, value in (("audio", recording.audio),
                                                             ("transcript", recording.transcript)) if value}
        # The body is bounded on its own: the other fields are few and short (a release name, two
        # region names, a key's id), so what a caller may send never shrinks with what a start adds.
        if len(json.dumps(grant.body, separators=(",", ":")).encode()) > MAX_TOKEN_BODY_BYTES:
            raise ValueError(f"the call's body exceeds {MAX_TOKEN_BODY_BYTES} bytes as JSON")
        raw = json.dumps(payload, separators=(",", ":")).encode()
        encoded = _b64(raw)
        return f"{encoded}.{_b64(self._sign(encoded))}", grant

    def redeem(self, token: str, carrier: str) -> CallGrant:
        """The grant, spent now; `TokenRefused` when forged, expired, replayed or for another carrier."""
        grant = self.check(token, carrier)
        if not self._spent.first_sighting(grant.token_id):
            raise TokenRefused("replayed")
        return grant

    def check(self, token: str, carrier: str) -> CallGrant:
        encoded, _, signature = token.partition(".")
        try:
            valid = hmac.compare_digest(_unb64(signature), self._sign(encoded))
            payload = json.loads(_unb64(encoded)) if valid else None
        except (ValueError, binascii.Error):
            raise TokenRefused("forged") from None
        if not isinstance(payload, dict):
            raise TokenRefused("forged")
        body, owner, via, release = payload.get("body"), payload.get("own"), payload.get("via"), payload.get("rel")
        grant = CallGrant(
            token_id=str(payload.get("jti", "")),
            carrier=str(payload.get("carrier", "")),
            session_key=str(payload.get("sid", "")),
            expires=float(payload.get("exp", 0)),
            body=body if isinstance(body, dict) else {},
            owner=owner if isinstance(owner, str) else None,
            handed_from=(str(via[0]), str(via[1])) if isinstance(via, list) and len(via) == 2 else None,
            release=release if isinstance(release, str) else None,
            evaluation=payload.get("ev") is True,
            recording=_wanted(payload.get("rec")),
            call=payload["call"] if isinstance(payload.get("call"), str) else None,
            line=line_of(payload.get("tel")),
            edge_call=payload.get("edge") is True,
        )
        if grant.expires <= self._clock():
            raise TokenRefused("expired")
        if grant.carrier != carrier:
            raise TokenRefused("wrong_carrier")
        if payload.get("rgn", self._region) != self._region:
            raise TokenRefused("wrong_region")
        return grant

    def _sign(self, encoded: str) -> bytes:
        return hmac.new(self._key, encoded.encode(), hashlib.sha256).digest()


def _wanted(rec: object) -> Wanted | None:
    """The signed `rec` back as the start's wish; any other shape (none is minted) asks nothing."""
    if not isinstance(rec, dict):
        return None
    fields = {name: rec.get(name) for name in ("audio", "transcript")}
    if not all(value is None or value in POLICIES for value in fields.values()):
        return None
    return Wanted(audio=fields["audio"], transcript=fields["transcript"])


def derive_key(secret: str) -> bytes:
    """The token key from a deployment secret, separated from that secret's other uses."""
    return hmac.new(secret.encode(), b"voicefleet phone call tokens v1", hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
