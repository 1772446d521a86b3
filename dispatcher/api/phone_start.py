"""`POST /start` with `transport: websocket` (or a carrier's name): Pipecat Cloud's token answer.

`{wsUrl, token, sessionId}`: the client (a Twilio Function, a TeXML handler, a WebSocket client)
connects to `{wsUrl}/{token}` within the token's life; the session, whose id is known now, starts
when it does ("the bot is not started until the client connects", as on Pipecat Cloud). The token
carries the request's `body` to the bot, and the asking key's caller id: the session is that key's
(its id is made with the key's owner key, so the key reads and stops it like any of its sessions),
and the start's `release` pin and `eval` mark, which its session takes as a web start's does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dispatcher.artifacts.wanted import Wanted
from dispatcher.errors import ApiError
from dispatcher.phone.access import websocket_url
from dispatcher.phone.settings import CARRIERS
from dispatcher.phone.state import PhoneState
from dispatcher.phone.tokens import MAX_TOKEN_BODY_BYTES, CallGrant
from dispatcher.sessions.ids import Caller, new_session_id
from dispatcher.usage.trunk_line import TrunkLine

PHONE_TRANSPORTS = ("websocket", *CARRIERS)


def phone_start(
    state: PhoneState, transport: str, body: Mapping[str, Any], base: str | None, who: Caller, region: str = "",
    handed_from: tuple[str, str] | None = None, release: str | None = None, evaluation: bool = False,
    recording: Wanted | None = None, session_key: str | None = None, line: TrunkLine | None = None,
    edge_call: bool = False,
) -> tuple[dict[str, Any], CallGrant]:
    """The answer and its token's grant; with no `base`, its `wsUrl` is the stream's path alone (a SIP
    edge's call: the edge opens it at its own dispatcher_url). `handed_from`: (the region the start arrived at, why it
    could not start it warm there): the token is a handed call's, whose place the caller holds. `line`:
    a SIP call's trunk and price, as the SIP edge said it (dispatcher/usage/trunk_line.py); `edge_call`: a call a
    listed SIP edge started with its own credential, priced or not."""
    carrier = "generic" if transport == "websocket" else transport
    try:
        token, grant = state.tokens.mint(carrier, body, owner=who.id, handed_from=handed_from, release=release,
                                         evaluation=evaluation, recording=recording, session_key=session_key,
                                         line=line, edge_call=edge_call)
    except ValueError:
        limit = MAX_TOKEN_BODY_BYTES
        raise ApiError(413, "body_too_large", f"a call's `body` rides in its token: at most {limit} bytes") from None
    path = "/ws/generic/voicefleet" if carrier == "generic" else f"/ws/{carrier}"
    return {
        "wsUrl": websocket_url(base, path) if base is not None else path,
        "token": token,
        "sessionId": phone_session_id(who, grant.session_key, region),
    }, grant


def phone_session_id(who: Caller, session_key: str, region: str = "") -> str:
    """The session id a call token minted with `session_key` starts (known before the token is)."""
    return new_session_id(who.owner_key, session_key, region)
