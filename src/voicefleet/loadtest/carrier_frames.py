"""Each carrier's media stream as the carrier itself sends it, for the phone caller (phone_line.py):
its first messages, a frame of the caller's audio, a key pressed, the hang-up, and where its bot's
audio is in what the bot sends back. One class a carrier; the caller is the same for all four.

Each shape is the carrier's documented one (docs/evals.md links the pages): Twilio Media Streams
(`connected`, `start`, 20 ms of 8 kHz μ-law a `media`, `dtmf`, `stop`); Telnyx media streaming
(the same events in snake_case, `stream_id` at the top, its call's id `call_control_id`); Plivo
audio streams (`start` alone, camelCase, a number for `sequenceNumber`, no `stop`: the stream just
closes; the bot answers `playAudio`); Exotel's Voicebot applet (snake_case, 16-bit PCM at 8 kHz
in ~100 ms frames). All four send `dtmf` events on a bidirectional stream, one a key.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import numpy as np

from voicefleet.loadtest import mulaw, twilio


@dataclass(frozen=True)
class CallIds:
    """The call's identifiers, as its carrier names them in every message."""

    call: str
    stream: str
    account: str


class Framing:
    """One carrier's protocol: what it sends (`opening`, `media`, `key`, `hang_up`) and how it
    carries the bot's audio (`bot_audio`). `sequence` is the message's number on the stream (the
    `start` is 1); `chunk` the audio frame's (the first is 1)."""

    name: ClassVar[str]
    frame_seconds: ClassVar[float] = 0.02  # the audio each `media` carries
    bot_event: ClassVar[str] = "media"  # the event the bot's audio comes in

    def new_ids(self) -> CallIds:
        return CallIds(str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()))

    def opening(self, ids: CallIds) -> list[dict[str, Any]]:
        raise NotImplementedError

    def media(self, ids: CallIds, sequence: int, chunk: int, samples: np.ndarray) -> dict[str, Any]:
        raise NotImplementedError

    def key(self, ids: CallIds, sequence: int, digit: str) -> dict[str, Any]:
        raise NotImplementedError

    def hang_up(self, ids: CallIds, sequence: int) -> dict[str, Any] | None:
        """The carrier's last message when the caller hangs up (None: it only closes the socket)."""
        raise NotImplementedError

    def bot_audio(self, message: Mapping[str, Any]) -> np.ndarray | None:
        """The bot's audio in one of its messages, as 8 kHz int16 samples; None for anything else."""
        media = message.get("media")
        if message.get("event") != self.bot_event or not isinstance(media, dict) or not media.get("payload"):
            return None
        return self.decode(base64.b64decode(media["payload"]), media)

    def decode(self, raw: bytes, media: Mapping[str, Any]) -> np.ndarray:
        return mulaw.decode(raw)

    def elapsed_ms(self, chunk: int) -> str:
        return str(round((chunk - 1) * self.frame_seconds * 1000))


def payload(audio: bytes) -> str:
    return base64.b64encode(audio).decode()


class TwilioFraming(Framing):
    name = "twilio"

    def new_ids(self) -> CallIds:
        ids = uuid.uuid4().hex
        return CallIds(f"CA{ids}", f"MZ{ids}", twilio.ACCOUNT_SID)

    def opening(self, ids: CallIds) -> list[dict[str, Any]]:
        return twilio.start_messages(ids.call, ids.stream)

    def media(self, ids: CallIds, sequence: int, chunk: int, samples: np.ndarray) -> dict[str, Any]:
        return twilio.media_message(ids.stream, sequence, mulaw.encode(samples), chunk=chunk)

    def key(self, ids: CallIds, sequence: int, digit: str) -> dict[str, Any]:
        return twilio.dtmf_message(ids.stream, sequence, digit)

    def hang_up(self, ids: CallIds, sequence: int) -> dict[str, Any] | None:
        return {"event": "stop", "sequenceNumber": str(sequence), "streamSid": ids.stream,
                "stop": {"accountSid": ids.account, "callSid": ids.call}}


class TelnyxFraming(Framing):
    name = "telnyx"

    def new_ids(self) -> CallIds:
        return CallIds(f"v3:{uuid.uuid4().hex}", str(uuid.uuid4()), str(uuid.uuid4()))

    def opening(self, ids: CallIds) -> list[dict[str, Any]]:
        return [
            {"event": "connected", "version": "1.0.0"},
            {"event": "start", "sequence_number": "1", "stream_id": ids.stream, "start": {
                "user_id": ids.account, "call_control_id": ids.call, "call_session_id": str(uuid.uuid4()),
                "from": "+13122010094", "to": "+13122123456", "client_state": "",
                "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1}}},
        ]  # fmt: skip

    def media(self, ids: CallIds, sequence: int, chunk: int, samples: np.ndarray) -> dict[str, Any]:
        return {"event": "media", "sequence_number": str(sequence), "stream_id": ids.stream,
                "media": {"track": "inbound", "chunk": str(chunk), "timestamp": self.elapsed_ms(chunk),
                          "payload": payload(mulaw.encode(samples))}}

    def key(self, ids: CallIds, sequence: int, digit: str) -> dict[str, Any]:
        occurred = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        return {"event": "dtmf", "stream_id": ids.stream, "occurred_at": occurred, "sequence_number": str(sequence),
                "dtmf": {"digit": digit}}

    def hang_up(self, ids: CallIds, sequence: int) -> dict[str, Any] | None:
        return {"event": "stop", "sequence_number": str(sequence), "stream_id": ids.stream,
                "stop": {"user_id": ids.account, "call_control_id": ids.call}}


class PlivoFraming(Framing):
    name = "plivo"
    bot_event = "playAudio"

    def new_ids(self) -> CallIds:
        return CallIds(str(uuid.uuid4()), str(uuid.uuid4()), "MA" + uuid.uuid4().hex[:18].upper())

    def opening(self, ids: CallIds) -> list[dict[str, Any]]:
        # Plivo's stream opens with `start` alone; the answer asked for μ-law (docs/phone.md's <Stream>).
        return [{"event": "start", "sequenceNumber": 1, "start": {
            "callId": ids.call, "streamId": ids.stream, "accountId": ids.account, "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000}}}]  # fmt: skip

    def media(self, ids: CallIds, sequence: int, chunk: int, samples: np.ndarray) -> dict[str, Any]:
        return {"event": "media", "sequenceNumber": sequence, "streamId": ids.stream,
                "media": {"track": "inbound", "timestamp": epoch_ms(), "chunk": chunk,
                          "payload": payload(mulaw.encode(samples))}}

    def key(self, ids: CallIds, sequence: int, digit: str) -> dict[str, Any]:
        return {"event": "dtmf", "sequenceNumber": sequence, "streamId": ids.stream,
                "dtmf": {"track": "inbound", "digit": digit, "timestamp": epoch_ms()}}

    def hang_up(self, ids: CallIds, sequence: int) -> dict[str, Any] | None:
        return None  # the stream's end is told to the status callback, not on the socket

    def decode(self, raw: bytes, media: Mapping[str, Any]) -> np.ndarray:
        return pcm16(raw) if media.get("contentType") == "audio/x-l16" else mulaw.decode(raw)


class ExotelFraming(Framing):
    name = "exotel"
    frame_seconds = 0.1  # Exotel streams ~100 ms of audio a message

    def new_ids(self) -> CallIds:
        ids = uuid.uuid4().hex
        return CallIds(f"CA{ids}", f"MZ{ids}", f"AC{ids}")

    def opening(self, ids: CallIds) -> list[dict[str, Any]]:
        return [
            {"event": "connected"},
            {"event": "start", "sequence_number": "1", "stream_sid": ids.stream, "start": {
                "stream_sid": ids.stream, "call_sid": ids.call, "account_sid": ids.account,
                "from": "+919876543210", "to": "+918047491899", "custom_parameters": {},
                "media_format": {"encoding": "audio/x-raw", "sample_rate": "8000", "bit_rate": "16"}}},
        ]  # fmt: skip

    def media(self, ids: CallIds, sequence: int, chunk: int, samples: np.ndarray) -> dict[str, Any]:
        return {"event": "media", "sequence_number": str(sequence), "stream_sid": ids.stream,
                "media": {"chunk": str(chunk), "timestamp": self.elapsed_ms(chunk),
                          "payload": payload(samples.astype("<i2").tobytes())}}

    def key(self, ids: CallIds, sequence: int, digit: str) -> dict[str, Any]:
        return {"event": "dtmf", "sequence_number": str(sequence), "stream_sid": ids.stream,
                "dtmf": {"digit": digit, "duration": "100"}}

    def hang_up(self, ids: CallIds, sequence: int) -> dict[str, Any] | None:
        return {"event": "stop", "sequence_number": str(sequence), "stream_sid": ids.stream,
                "stop": {"call_sid": ids.call, "account_sid": ids.account, "reason": "callended"}}

    def decode(self, raw: bytes, media: Mapping[str, Any]) -> np.ndarray:
        return pcm16(raw)


def pcm16(raw: bytes) -> np.ndarray:
    """16-bit little-endian PCM as int16 samples (a stray last byte dropped)."""
    return np.frombuffer(raw[: len(raw) - len(raw) % 2], dtype="<i2").astype(np.int16)


def epoch_ms() -> str:
    return str(int(time.time() * 1000))


FRAMINGS: dict[str, Framing] = {f.name: f for f in (TwilioFraming(), TelnyxFraming(), PlivoFraming(), ExotelFraming())}
