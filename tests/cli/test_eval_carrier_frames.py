"""The phone caller speaks each carrier's media stream as the carrier does: what it sends is read by
the parsers a call meets on its way, round trip. Pipecat's `parse_telephony_websocket` (the bot's
`create_transport`) names the carrier and the call from its first messages; the carrier's own
Pipecat serializer, built as `create_transport` builds it, hears its audio and its keys; the
dispatcher counts its audio as audio (its silence bound) and a key as no audio; and the bot's
answer, serialized by that serializer, is heard back by the caller."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from pipecat.frames.frames import InputAudioRawFrame, InputDTMFFrame, OutputAudioRawFrame
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.base_serializer import FrameSerializer
from pipecat.serializers.exotel import ExotelFrameSerializer
from pipecat.serializers.plivo import PlivoFrameSerializer
from pipecat.serializers.telnyx import TelnyxFrameSerializer
from pipecat.serializers.twilio import TwilioFrameSerializer

from dispatcher.phone import relay, silence
from dispatcher.phone.settings import CARRIERS
from voicefleet.evals.scenario import PHONE_TRANSPORTS
from voicefleet.loadtest.carrier_frames import FRAMINGS, CallIds, Framing

RATE = 8000


class FirstMessages:
    """The few members of a WebSocket `parse_telephony_websocket` reads: the carrier's messages as text."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self._texts = [json.dumps(m) for m in messages]

    async def iter_text(self) -> AsyncIterator[str]:
        for text in self._texts:
            yield text


def serializer_of(carrier: str, call: Any) -> FrameSerializer:
    """The carrier's serializer with the arguments Pipecat's `create_transport` gives it."""
    if carrier == "twilio":
        return TwilioFrameSerializer(stream_sid=call["stream_id"], call_sid=call["call_id"], account_sid="AC1",
                                     auth_token="test")
    if carrier == "telnyx":
        return TelnyxFrameSerializer(stream_id=call["stream_id"], call_control_id=call["call_id"],
                                     outbound_encoding=call["outbound_encoding"], inbound_encoding="PCMU",
                                     api_key="test")
    if carrier == "plivo":
        return PlivoFrameSerializer(stream_id=call["stream_id"], call_id=call["call_id"], auth_id="MA1",
                                    auth_token="test")
    return ExotelFrameSerializer(stream_sid=call["stream_id"], call_sid=call["call_id"])


def tone(seconds: float) -> np.ndarray:
    """A loud 440 Hz tone at the line's rate: speech as far as any level check goes."""
    times = np.arange(round(RATE * seconds)) / RATE
    return (8000 * np.sin(2 * np.pi * 440 * times)).astype(np.int16)


def frame_text(message: dict[str, Any]) -> dict[str, Any]:
    return {"type": "websocket.receive", "text": json.dumps(message)}


def test_every_carrier_the_dispatcher_takes_is_a_scenario_transport_with_its_own_framing() -> None:
    # A SIP call is RTP through the edge, which speaks a carrier's stream to the dispatcher itself: the
    # scenario's caller frames nothing of its own for it.
    assert tuple(FRAMINGS) == CARRIERS == tuple(name for name in PHONE_TRANSPORTS if name != "sip")
    assert len({type(framing) for framing in FRAMINGS.values()}) == len(CARRIERS)


@pytest.mark.parametrize("carrier", CARRIERS)
async def test_the_callers_stream_is_read_by_the_bot_and_the_dispatcher_as_that_carriers(carrier: str) -> None:
    framing: Framing = FRAMINGS[carrier]
    ids: CallIds = framing.new_ids()
    samples = tone(framing.frame_seconds)
    media = framing.media(ids, 2, 1, samples)
    opening = framing.opening(ids)

    # The bot's create_transport: the carrier and its call from the first two messages (Plivo's: `start`, then audio).
    kind, call = await parse_telephony_websocket(FirstMessages([*opening, media][:2]))
    assert kind == carrier and (call["call_id"], call["stream_id"]) == (ids.call, ids.stream)

    serializer = serializer_of(carrier, call)
    await serializer.setup(SimpleNamespace(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE))  # type: ignore[arg-type]
    heard = await serializer.deserialize(json.dumps(media))
    assert isinstance(heard, InputAudioRawFrame) and heard.sample_rate == RATE
    received = np.frombuffer(heard.audio, dtype=np.int16)
    assert len(received) == len(samples)  # a frame's length of audio: 20 ms, Exotel's 100 ms
    assert np.max(np.abs(received.astype(int) - samples)) <= 8000 // 30  # μ-law's step at that level; PCM: 0

    key = await serializer.deserialize(json.dumps(framing.key(ids, 3, "#")))
    assert isinstance(key, InputDTMFFrame) and key.button.value == "#"

    # The dispatcher: audio keeps a call alive past its silence bound, a key does not.
    assert silence.is_audio(frame_text(media)) and not silence.is_audio(frame_text(framing.key(ids, 3, "4")))

    # The bot's answer, as its serializer sends it and the dispatcher relays it, heard by the caller.
    answer = tone(0.04)
    sent = await serializer.serialize(OutputAudioRawFrame(audio=answer.tobytes(), sample_rate=RATE, num_channels=1))
    assert isinstance(sent, str) and relay.is_audio(frame_text(json.loads(sent)))
    back = framing.bot_audio(json.loads(sent))
    assert back is not None and len(back) == len(answer)
    assert np.max(np.abs(back.astype(int) - answer)) <= 8000 // 30
    assert framing.bot_audio(json.loads(json.dumps({"event": "mark", "mark": {"name": "x"}}))) is None


@pytest.mark.parametrize("carrier", CARRIERS)
async def test_each_message_carries_its_carriers_ids_and_numbers(carrier: str) -> None:
    """The fields each carrier documents, in its own spelling: the stream's id on every message, the
    message's number counting on from the `start`'s 1, the audio frame's chunk."""
    framing = FRAMINGS[carrier]
    ids = framing.new_ids()
    start = framing.opening(ids)[-1]
    media = framing.media(ids, 7, 5, tone(framing.frame_seconds))
    key = framing.key(ids, 8, "5")
    stream, number = {"twilio": ("streamSid", "sequenceNumber"), "telnyx": ("stream_id", "sequence_number"),
                      "plivo": ("streamId", "sequenceNumber"), "exotel": ("stream_sid", "sequence_number")}[carrier]
    first = 1 if carrier == "plivo" else "1"  # Plivo numbers its messages with numbers, the others with strings
    assert start["event"] == "start" and start[number] == first
    assert media[stream] == key[stream] == ids.stream
    assert (str(media[number]), str(key[number])) == ("7", "8") and str(media["media"]["chunk"]) == "5"
    assert key["dtmf"]["digit"] == "5"
    stop = framing.hang_up(ids, 9)
    if carrier == "plivo":
        assert stop is None  # Plivo's stream just closes; its end goes to the status callback
    else:
        assert stop is not None and stop["event"] == "stop" and stop[stream] == ids.stream and str(stop[number]) == "9"
