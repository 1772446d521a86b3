"""What the phone routes need, built once per app (`app.state.phone`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import HTTPConnection

from dispatcher.phone.calls import PhoneCalls
from dispatcher.phone.settings import PhoneSettings
from dispatcher.phone.signatures import Replays
from dispatcher.phone.tokens import CallTokens


@dataclass
class PhoneState:
    settings: PhoneSettings
    tokens: CallTokens
    calls: PhoneCalls
    webhook_replays: Replays = field(default_factory=Replays)  # Plivo nonces, Twilio CallSids seen
    active_calls: int = 0


def phone_state(connection: HTTPConnection) -> PhoneState:
    state: PhoneState = connection.app.state.phone
    return state
