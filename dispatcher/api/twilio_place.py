"""`POST /calls` through Twilio: the create, once the session's stream token is minted and the account's
pace allows (dispatcher/phone/twilio_dial.py says what the create carries and why)."""

from __future__ import annotations

from typing import Any

from dispatcher.api.call_schemas import CallRequest
from dispatcher.api.state import AppState
from dispatcher.errors import ApiError
from dispatcher.phone.access import carrier_base
from dispatcher.phone.twilio_dial import callback_url, create_form, kept_call
from dispatcher.phone.twilio_dialer import TwilioDialer
from dispatcher.sessions.ids import Caller


def twilio_base(state: AppState) -> str:
    """Where the call's stream and callbacks go: this dispatcher's own address, from its settings (a dialer
    exists only where there is one: dispatcher/phone/state.py)."""
    base = carrier_base(state.phone.settings, state.peers.regions)
    if base is None:
        raise ApiError(503, "twilio_not_configured", "set PHONE_PUBLIC_URL: the address Twilio reaches this "
                       "dispatcher at (docs/phone.md#calling-out)", retry_after=60)
    return base


def dialer_of(state: AppState) -> TwilioDialer:
    if state.phone.dialer is None:
        raise ApiError(503, "twilio_not_configured", f"no Twilio account places calls for this dispatcher: "
                       f"{state.phone.no_dialer} (docs/phone.md#calling-out)", retry_after=60)
    return state.phone.dialer


async def place_twilio(state: AppState, dialer: TwilioDialer, payload: CallRequest, who: Caller,
                       session_id: str, stream_url: str, bot_body: dict[str, Any]) -> str:
    """The call's SID. Its callbacks come back to this region (its own URL), where its values are kept."""
    base = twilio_base(state)
    key = state.phone.settings.token_key
    voicemail = payload.voicemail or dialer.settings.voicemail
    form = create_form(to=payload.to, caller_id=payload.caller_id, stream_url=stream_url,
                       status_url=callback_url(base, key, session_id, "status"),
                       amd_url=callback_url(base, key, session_id, "amd"),
                       ring_seconds=dialer.settings.ring_seconds, voicemail=voicemail)
    return await dialer.place(session_id, form, kept_call(who.id, bot_body, voicemail))
