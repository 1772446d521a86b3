"""`POST /calls` through a carrier's Calls API (Twilio's, Telnyx's TeXML): the create, once the session's
stream token is minted and the account's pace allows (dispatcher/phone/twilio_dial.py and
dispatcher/phone/telnyx_dial.py say what each create carries and why)."""

from __future__ import annotations

from typing import Any

from dispatcher.api.call_schemas import CallRequest
from dispatcher.api.state import AppState
from dispatcher.errors import ApiError
from dispatcher.phone.access import carrier_base
from dispatcher.phone.dialer import Dialer
from dispatcher.phone.twilio_dial import callback_url, kept_call
from dispatcher.sessions.ids import Caller
from voicefleet_settings.call_policy import Wording, policy_refusal

TITLES = {"twilio": "Twilio", "telnyx": "Telnyx"}


def placed_base(state: AppState, carrier: str) -> str:
    """Where the call's stream and callbacks go: this dispatcher's own address, from its settings (a dialer
    exists only where there is one: dispatcher/phone/state.py)."""
    base = carrier_base(state.phone.settings, state.peers.regions)
    if base is None:
        raise ApiError(503, f"{carrier}_not_configured", f"set PHONE_PUBLIC_URL: the address {TITLES[carrier]} "
                       "reaches this dispatcher at (docs/phone.md#calling-out)", retry_after=60)
    return base


def dialer_of(state: AppState, carrier: str) -> Dialer:
    dialer = state.phone.dialers.get(carrier)
    if dialer is None:
        why = state.phone.no_dialer.get(carrier, "")
        raise ApiError(503, f"{carrier}_not_configured", f"no {TITLES[carrier]} account places calls for this "
                       f"dispatcher: {why} (docs/phone.md#calling-out)", retry_after=60)
    return dialer


def check_policy(dialer: Dialer, caller: str, to: str, caller_id: str) -> None:
    """403 before the pace is spent: the key may not call out through this carrier, or not to `to`, or not as
    `caller_id` (the SIP trunk's policy, from `TWILIO_CALLERS`, `…_DESTINATIONS`, `…_CALLER_IDS`)."""
    prefix = dialer.setting_prefix
    words = Wording(TITLES[dialer.carrier], f"{prefix}_CALLERS (no key places calls through {TITLES[dialer.carrier]}"
                    " until it is named there: docs/phone.md#who-may-call-out)",
                    f"{prefix}_DESTINATIONS", f"{prefix}_CALLER_IDS (the account's numbers its keys may show)")
    refused = policy_refusal(dialer.settings, words, caller, to, caller_id)
    if refused is not None:
        raise ApiError(403, "call_not_allowed", refused)


async def place_out(state: AppState, dialer: Dialer, payload: CallRequest, who: Caller,
                    session_id: str, stream_url: str, bot_body: dict[str, Any]) -> str | None:
    """The call's SID, where the carrier's answer names it. Its callbacks come back to this region (its own
    URL), where its values are kept."""
    base = placed_base(state, dialer.carrier)
    key = state.phone.settings.token_key
    voicemail = payload.voicemail or dialer.settings.voicemail
    create = dialer.create_for(to=payload.to, caller_id=payload.caller_id, stream_url=stream_url,
                               status_url=callback_url(base, key, session_id, "status", dialer.carrier),
                               amd_url=callback_url(base, key, session_id, "amd", dialer.carrier),
                               voicemail=voicemail)
    return await dialer.place(session_id, create, kept_call(who.id, bot_body, voicemail))
