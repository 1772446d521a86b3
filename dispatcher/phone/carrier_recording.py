"""The carrier's own copy of a call (PHONE_CARRIER_RECORDING): an opt-in dual-channel recording the
carrier makes and keeps, started by the XML the dispatcher answers its webhook with.

Twilio and Telnyx both take `<Start><Recording channels="dual">` before `<Connect><Stream>`, and
POST a form to `recordingStatusCallback` (`RecordingSid`, `RecordingUrl`, `RecordingStatus`,
`RecordingDuration`, `RecordingChannels`, `CallSid`). That callback is signed as the call webhooks
are; its URL also names the session and carries a MAC of it keyed with the phone token key, since
Telnyx signs the body only: a genuine callback replayed to another session's URL links nothing.
The carrier keeps the audio (or writes it to the team's bucket where its account is set up so);
the dispatcher keeps the link, never a carrier credential.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

from dispatcher.settings import SettingsError

RECORDING_CARRIERS = ("twilio", "telnyx")
CALLBACK_PATH = "/phone/{carrier}/recordings/{session_id}/{mac}"
MAX_LINKED = 4  # a call's answer starts one recording; a call answered again (a redirect) a few more
MAX_URL_CHARS = 2048
_SID = re.compile(r"[A-Za-z0-9:_-]{1,128}")


def parse_carrier_recording(value: str) -> frozenset[str]:
    """`off` (or unset), `on` (every carrier that can), or a comma-separated list of them."""
    words = [w.strip().lower() for w in value.split(",") if w.strip()]
    if not words or words == ["off"]:
        return frozenset()
    if words == ["on"]:
        return frozenset(RECORDING_CARRIERS)
    unknown = [w for w in words if w not in RECORDING_CARRIERS]
    if unknown:
        raise SettingsError(f"PHONE_CARRIER_RECORDING={value!r}: {', '.join(unknown)} cannot record a call here; "
                            f"write off, on, or a list of {', '.join(RECORDING_CARRIERS)}")
    return frozenset(words)


def callback_mac(key: bytes, carrier: str, session_id: str) -> str:
    digest = hmac.new(key, f"carrier-recording|{carrier}|{session_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def callback_path(key: bytes, carrier: str, session_id: str) -> str:
    return CALLBACK_PATH.format(carrier=carrier, session_id=session_id, mac=callback_mac(key, carrier, session_id))


def mac_valid(key: bytes, carrier: str, session_id: str, presented: str) -> bool:
    return hmac.compare_digest(callback_mac(key, carrier, session_id).encode(), presented.encode())


def start_recording(carrier: str, callback_url: str) -> str:
    """The `<Start><Recording>` that goes before the stream. Twilio keeps silence untrimmed on
    request (`trim="do-not-trim"`); Telnyx trims only when asked, so it is left out there."""
    trim = ' trim="do-not-trim"' if carrier == "twilio" else ""
    return (f'<Start><Recording channels="dual" track="both" recordingStatusCallback={quoteattr(callback_url)} '
            f'recordingStatusCallbackMethod="POST" recordingStatusCallbackEvent="completed absent"{trim}/></Start>')


@dataclass(frozen=True)
class CarrierRecording:
    """What a status callback says of one recording: the link, never a credential."""

    carrier: str
    status: str  # "completed" or "absent"
    recording_sid: str
    url: str | None
    duration_seconds: int | None
    channels: int | None
    call_sid: str | None

    def timeline_fields(self) -> dict[str, Any]:
        return {"carrier": self.carrier, "recording_sid": self.recording_sid, "url": self.url,
                "duration_seconds": self.duration_seconds, "channels": self.channels, "call_sid": self.call_sid}


class CallbackRefused(ValueError):
    """A status callback that does not describe a recording; the message says which field."""


def recording_from_form(carrier: str, params: Iterable[tuple[str, str]]) -> CarrierRecording:
    fields = dict(params)
    sid = fields.get("RecordingSid", "")
    if not _SID.fullmatch(sid):
        raise CallbackRefused("RecordingSid is missing or not a recording id")
    status = fields.get("RecordingStatus", "")
    if status not in ("completed", "absent", "in-progress", "failed"):
        raise CallbackRefused("RecordingStatus is not one the carrier sends (completed, absent, in-progress)")
    url = fields.get("RecordingUrl") or None
    if url is not None and (not url.startswith("https://") or len(url) > MAX_URL_CHARS):
        raise CallbackRefused("RecordingUrl is not an https:// URL")
    if url is not None and "?" in url:
        # A pre-signed URL (Telnyx's, valid minutes): its query is a credential, which the timeline
        # would keep a day past its use (and cut short); the recording SID is the lasting name.
        url = None
    call_sid = fields.get("CallSid") or None
    return CarrierRecording(carrier=carrier, status=status, recording_sid=sid, url=url,
                            duration_seconds=_count(fields.get("RecordingDuration")),
                            channels=_count(fields.get("RecordingChannels")),
                            call_sid=call_sid if call_sid is not None and _SID.fullmatch(call_sid) else None)


def _count(value: str | None) -> int | None:
    if value is None or not value.isdigit() or len(value) > 9:
        return None
    return int(value)
