"""The frames the edge sends and reads on the dispatcher's carrier WebSocket: Exotel's media-stream
shape (`connected`, `start`, `media` with base64 16-bit PCM at 8 kHz, `dtmf`; `clear` from the bot).

Why Exotel's: Pipecat's `parse_telephony_websocket` recognises it, so a bot that lists the phone
carriers takes a SIP call unchanged, and its serializer carries linear PCM (PJSIP's conference
bridge gives and takes PCM; G.711 is PJSIP's to code) and hangs nothing up through a carrier's REST
API (Twilio's and Telnyx's would need those credentials in the bot). docs/sip.md says more.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

EDGE_ACCOUNT = "sipedge"  # Exotel's account_sid: Pipecat's detection wants one; the bot sees this


def handshake(stream_id: str, call_id: str, from_uri: str, to_uri: str, edge_url: str | None = None) -> list[str]:
    """The two frames a carrier opens with: the dispatcher waits for both before it claims a bot. `edge_url`:
    this edge's control API as the dispatcher lists it, so that it sends the call's transfer here."""
    start = {"stream_sid": stream_id, "call_sid": call_id, "account_sid": EDGE_ACCOUNT,
             "from": from_uri, "to": to_uri, "media_format": {"encoding": "raw/slin", "sample_rate": "8000"},
             **({"edge_url": edge_url} if edge_url else {})}
    return [json.dumps({"event": "connected"}),
            json.dumps({"event": "start", "sequence_number": 1, "stream_sid": stream_id, "start": start})]


def media(stream_id: str, pcm: bytes) -> str:
    return media_frames(stream_id)(pcm)


def media_frames(stream_id: str) -> Callable[[bytes], str]:
    """What makes a call's `media` frames, fifty a second: the text `json.dumps` gives for
    {"event": "media", "stream_sid": stream_id, "media": {"payload": <base64 of the PCM>}}, the part
    that never changes encoded once (the stream id JSON-quoted as json.dumps quotes it), the base64
    put in as it is (its alphabet needs no escape in JSON) instead of a dict dumped each frame."""
    head = f'{{"event": "media", "stream_sid": {json.dumps(stream_id)}, "media": {{"payload": "'

    def frame(pcm: bytes) -> str:
        return head + binascii.b2a_base64(pcm, newline=False).decode("ascii") + '"}}'

    return frame


def dtmf(stream_id: str, digit: str) -> str:
    """A key the caller pressed: Pipecat's serializer makes it an InputDTMFFrame."""
    return json.dumps({"event": "dtmf", "stream_sid": stream_id, "dtmf": {"digit": digit}})


@dataclass(frozen=True)
class BotFrame:
    pcm: bytes = b""  # the bot's audio, 16-bit PCM at 8 kHz
    clear: bool = False  # the bot was interrupted: what it queued must not be played


def read_bot_frame(text: str | bytes) -> BotFrame | None:
    """A frame from the bot, or None for one the edge has no use for (or that is not JSON)."""
    try:
        message: Any = json.loads(text)
    except ValueError:
        return None
    if not isinstance(message, Mapping):
        return None
    if message.get("event") == "clear":
        return BotFrame(clear=True)
    body = message.get("media") if message.get("event") == "media" else None
    payload = body.get("payload") if isinstance(body, Mapping) else None
    if not isinstance(payload, str):
        return None
    try:
        return BotFrame(pcm=base64.b64decode(payload, validate=True))
    except ValueError:
        return None
