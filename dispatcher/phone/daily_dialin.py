"""Daily PSTN dial-in: a call Daily holds becomes a session with Pipecat's dial-in body, and its bot
gets a credential that opens its own call's `pinlessCallUpdate` and nothing else. The webhook and
the update are served by dispatcher/api/routers/daily_dialin.py.

Daily holds the caller (hold music) until the room is ready, so this is the one phone path where a
cold start is heard as music rather than silence. The webhook answers as soon as the launch is
accepted; a retried webhook (same `callId`) finds the same session. The bot is handed, as Pipecat's
`DailyDialinRequest` says, a `daily_api_key` and `daily_api_url`: here a credential bound to this
session and this call, and this dispatcher's URL, so the deployment's Daily key never reaches a bot.
That credential travels in the bot's launch body (ECS overrides, instance metadata), so it expires
when the session can no longer be running.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from dispatcher.errors import ApiError
from dispatcher.media.room_options import RoomOptions
from dispatcher.phone.calls import PHONE_CALLER
from dispatcher.sessions.ids import new_session_id
from dispatcher.sessions.service import Session, SessionService

# A call credential lives as long as its session may (MAX_SESSION_SECONDS) plus this margin.
CREDENTIAL_MARGIN_SECONDS = 120
# Its expiry counts from the start of the minute the webhook came in (the margin covers the rest):
# Daily's retry of the webhook must build the very same body, because the session's idempotency
# check compares bodies and a different credential would be answered 409.
CREDENTIAL_STEP_SECONDS = 60


@dataclass(frozen=True)
class DialinCall:
    """A call Daily holds, as its webhook names it."""

    call_id: str
    call_domain: str
    caller: str | None  # `From`
    called: str | None  # `To`
    sip_headers: Mapping[str, str] | None = None
    region: str = ""  # the region that takes the call (with several regions)

    @property
    def session_key(self) -> str:
        return f"daily-dialin:{self.call_id}"  # Daily's retry of this call finds the same session

    @property
    def session_id(self) -> str:
        return new_session_id(PHONE_CALLER, self.session_key, self.region)


async def start_dialin(
    sessions: SessionService, call: DialinCall, *, api_url: str, token_key: bytes, now: float,
    max_session_seconds: int, counted_elsewhere: bool = False,
) -> Session:
    """The call's session, in a SIP-enabled room, its bot handed Pipecat's dial-in body with
    `api_url` (where its `pinlessCallUpdate` goes) and the call's own credential.
    `counted_elsewhere`: spilled over from the region Daily called, whose demand it is."""
    session_id = call.session_id
    dialin_settings: dict[str, object] = {
        "call_id": call.call_id, "call_domain": call.call_domain, "To": call.called, "From": call.caller,
    }
    if call.sip_headers:
        dialin_settings["sip_headers"] = call.sip_headers
    sip = {"display_name": str(call.caller or "caller")[:64], "sip_mode": "dial-in", "num_endpoints": 1}
    # A warm transfer dials the person out into this room (daily_warm.py), with the dispatcher's key alone: the
    # bot of a SIP room owns nothing (media/daily.py `grant`). Four: bot, caller, person, a reconnect.
    room = {"sip": sip, "enable_dialout": True, "max_participants": 4}

    async def start(expires: int) -> Session:
        credential = call_credential(token_key, session_id, call.call_id, call.call_domain, expires)
        body = {"dialin_settings": dialin_settings, "daily_api_key": credential, "daily_api_url": api_url}
        return await sessions.start(
            caller=PHONE_CALLER, idempotency_key=call.session_key, body=body, wait=False,
            room_options=RoomOptions(room=room), transport="daily", counted_elsewhere=counted_elsewhere,
        )  # fmt: skip

    minute = int(now) // CREDENTIAL_STEP_SECONDS * CREDENTIAL_STEP_SECONDS
    expires = minute + max_session_seconds + CREDENTIAL_MARGIN_SECONDS
    try:
        return await start(expires)
    except ApiError as exc:
        if exc.code != "idempotency_conflict":
            raise
        # A retry in the minute after the first attempt: the session's body has that minute's expiry.
        return await start(expires - CREDENTIAL_STEP_SECONDS)


def check_credential(
    token_key: bytes, session_id: str, call_id: str, call_domain: str, authorization: str, now: float
) -> None:
    """Whether `authorization` (`Bearer <expires>.<hmac>`) opens this call's update now: 403 otherwise."""
    scheme, _, presented = authorization.partition(" ")
    expires_text = presented.strip().partition(".")[0]
    expires = int(expires_text) if expires_text.isascii() and expires_text.isdigit() and len(expires_text) < 16 else 0
    expected = call_credential(token_key, session_id, call_id, call_domain, expires)
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected.encode()):
        raise ApiError(403, "forbidden", "this credential does not open that call")
    if now > expires:
        raise ApiError(403, "forbidden", "this credential has expired")


def call_credential(token_key: bytes, session_id: str, call_id: str, call_domain: str, expires: int) -> str:
    """`<expires>.<hmac>`: deterministic for a given expiry (a retried webhook hands the bot the same
    body), bound to one session and call, signed with its expiry (epoch seconds)."""
    message = f"daily-dialin\x00{session_id}\x00{call_id}\x00{call_domain}\x00{expires}".encode()
    return f"{expires}.{hmac.new(token_key, message, hashlib.sha256).hexdigest()}"
