"""Twilio Media Streams' messages as Twilio sends them (docs/phone.md): `connected` and `start`, 20 ms
of 8 kHz μ-law a `media`, a `dtmf` a key. The phone caller (phone_line.py) speaks them through
carrier_frames.py, as it speaks the other carriers'; the benchmarks send them directly.
"""

from __future__ import annotations

import base64
from typing import Any

ACCOUNT_SID = "AC" + "0" * 32


def start_messages(call_sid: str, stream_sid: str, custom: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Twilio's first two messages on a stream: `connected`, then `start` with the call's ids."""
    return [
        {"event": "connected", "protocol": "Call", "version": "1.0.0"},
        {"event": "start", "sequenceNumber": "1", "streamSid": stream_sid, "start": {
            "accountSid": ACCOUNT_SID, "streamSid": stream_sid, "callSid": call_sid, "tracks": ["inbound"],
            "customParameters": dict(custom or {}),
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}},
    ]  # fmt: skip


def dtmf_message(stream_sid: str, sequence: int, digit: str) -> dict[str, Any]:
    """One `dtmf` message: a key the caller pressed, as Twilio reports it (one message a key)."""
    return {"event": "dtmf", "streamSid": stream_sid, "sequenceNumber": str(sequence),
            "dtmf": {"track": "inbound_track", "digit": digit}}


def media_message(stream_sid: str, sequence: int, payload: bytes, *, chunk: int | None = None) -> dict[str, Any]:
    """One `media` message: 20 ms of the caller's μ-law audio (its chunk: `sequence` unless given)."""
    chunk = sequence if chunk is None else chunk
    frame = {"track": "inbound", "chunk": str(chunk), "timestamp": str((chunk - 1) * 20),
             "payload": base64.b64encode(payload).decode()}
    return {"event": "media", "sequenceNumber": str(sequence), "streamSid": stream_sid, "media": frame}
