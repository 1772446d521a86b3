"""Calls placed through Twilio's Calls API (`POST /calls` with `carrier: twilio`; docs/phone.md#calling-out).

One create per call (`POST .../Calls.json`): the call's TwiML connects its media stream to this dispatcher
(`<Connect><Stream>` with the session's one-time token), its progress comes back to a signed status
callback (initiated, ringing, answered, completed: busy, no-answer, failed, canceled), and Twilio's
asynchronous answering-machine detection (`MachineDetection` with `AsyncAmd=true`) to a second one.
Both callback URLs name the session and carry a MAC of it, so a callback, signed by Twilio, can only
speak for the call it was handed out with.

The creates are paced at the account's calls per second (`TWILIO_CALLS_PER_SECOND`, Twilio's default
1), across every replica by the store's bucket (dispatcher/phone/call_pace.py); Twilio's own 429 holds
the account's requests until its Retry-After (dispatcher/phone/twilio_calls.py). What the callbacks need
later (the key that placed the call, the bot's body, the team's voicemail choice) is kept sealed in the
store for the call's life, never in a URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

from botchannel.answered_by import MACHINE
from dispatcher.phone.transfer_target import E164
from voicefleet_settings.call_policy import ANY_NUMBER, DESTINATION
from voicefleet_settings.read import SettingsError, setting_choice, setting_float, setting_int, setting_list

VOICEMAIL_CHOICES = ("hang_up", "message", "flag")
# The final CallStatus (Twilio's, and Telnyx's TeXML, which copies it) of a call never answered → the outcome
# the trunk path records too.
NOT_ANSWERED = {"busy": "busy", "no-answer": "no_answer", "failed": "failed", "canceled": "canceled"}
STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")
CALLBACK_PATH = "/phone/{carrier}/calls/{session_id}/{mac}/{what}"
KEPT_SECONDS = 26 * 3600.0  # past Twilio's longest call (24 h; Telnyx's: 4 h): a late AMD verdict finds its call


@dataclass(frozen=True)
class DialSettings:
    """A carrier's calls out: its pace, ring time, voicemail choice and pace wait (`TWILIO_CALLS_PER_SECOND`,
    `TELNYX_CALLS_PER_SECOND`, …), and who may call where as whom (voicefleet_settings/call_policy.py: no
    key by default, as a SIP trunk's)."""

    calls_per_second: float = 1.0
    ring_seconds: int = 30
    voicemail: str = "hang_up"
    max_wait_seconds: float = 5.0
    callers: tuple[str, ...] = ()
    destinations: tuple[str, ...] = (ANY_NUMBER,)
    caller_ids: tuple[str, ...] = ()


def dial_settings_from_env(env: Mapping[str, str], prefix: str) -> DialSettings:
    """`prefix` `TWILIO` or `TELNYX`: `TWILIO_CALLS_PER_SECOND`, … (a name of its own: the settings' test
    follows the names it builds to each caller's prefix)."""
    destinations = setting_list(env, f"{prefix}_DESTINATIONS")
    caller_ids = setting_list(env, f"{prefix}_CALLER_IDS")
    for name, values, shape, what in ((f"{prefix}_DESTINATIONS", destinations, DESTINATION, "E.164 patterns "
                                       "(`+1*`, `+14155550100`)"),
                                      (f"{prefix}_CALLER_IDS", caller_ids, E164, "E.164 numbers (`+14155550199`)")):
        wrong = [value for value in values if not shape.fullmatch(value)]
        if wrong:
            raise SettingsError(f"{name}: {wrong[0][:40]!r} is not one of {what}")
    return DialSettings(setting_float(env, f"{prefix}_CALLS_PER_SECOND"), setting_int(env, f"{prefix}_RING_SECONDS"),
                        setting_choice(env, f"{prefix}_VOICEMAIL"),
                        setting_float(env, f"{prefix}_CALL_MAX_WAIT_SECONDS"),
                        setting_list(env, f"{prefix}_CALLERS"), destinations, caller_ids)


def callback_mac(key: bytes, session_id: str, carrier: str = "twilio") -> str:
    digest = hmac.new(key, f"{carrier}-outbound|{session_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def callback_url(base: str, key: bytes, session_id: str, what: str, carrier: str = "twilio") -> str:
    mac = callback_mac(key, session_id, carrier)
    return base + CALLBACK_PATH.format(carrier=carrier, session_id=session_id, mac=mac, what=what)


def mac_valid(key: bytes, session_id: str, presented: str, carrier: str = "twilio") -> bool:
    return hmac.compare_digest(callback_mac(key, session_id, carrier).encode(), presented.encode())


def stream_twiml(stream_url: str) -> str:
    return f"<Response><Connect><Stream url={quoteattr(stream_url)}/></Connect></Response>"


def create_form(*, to: str, caller_id: str, stream_url: str, status_url: str, amd_url: str, ring_seconds: int,
                voicemail: str) -> list[tuple[str, str]]:
    """The create's parameters. A message left on a machine waits for its greeting's end
    (`DetectMessageEnd`); otherwise the verdict comes as soon as Twilio knows (`Enable`)."""
    return [
        ("To", to), ("From", caller_id), ("Twiml", stream_twiml(stream_url)), ("Timeout", str(ring_seconds)),
        ("StatusCallback", status_url), ("StatusCallbackMethod", "POST"),
        *(("StatusCallbackEvent", event) for event in STATUS_EVENTS),
        ("MachineDetection", "DetectMessageEnd" if voicemail == "message" else "Enable"), ("AsyncAmd", "true"),
        ("AsyncAmdStatusCallback", amd_url), ("AsyncAmdStatusCallbackMethod", "POST"),
    ]


def kept_call(owner: str, body: Mapping[str, Any], voicemail: str) -> dict[str, Any]:
    """What the callbacks read back for the call (sealed in the store, by session)."""
    return {"owner": owner, "body": dict(body), "voicemail": voicemail}


def voicemail_action(voicemail: str, answered_by: str) -> str | None:
    """What a verdict does: `hang_up`, `hand_to_bot` (a fresh stream whose bot is told), or None (the
    call goes on as it is: a person, or a verdict Twilio could not reach)."""
    if answered_by == "fax":
        return "hang_up"  # nobody to speak to, whatever the choice
    if answered_by not in MACHINE:
        return None
    if voicemail == "hang_up":
        return "hang_up"
    if voicemail == "message" and answered_by == "machine_start":
        return None  # DetectMessageEnd's verdict at the beep follows
    return "hand_to_bot"
