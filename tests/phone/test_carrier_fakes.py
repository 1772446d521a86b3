"""The carrier fakes the phone tests call with speak as the carriers do, by the same account as the
load test's caller (src/voicefleet/loadtest/carrier_frames.py): the `start` is message 1 and each
`media` message carries as much audio as the carrier's own (Exotel's ~100 ms, 20 ms elsewhere)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from tests.fakes.carriers import CarrierCall
from voicefleet.loadtest.carrier_frames import FRAMINGS

RATE = 8000  # every carrier's line
NUMBER = {"twilio": "sequenceNumber", "plivo": "sequenceNumber", "telnyx": "sequence_number",
          "exotel": "sequence_number"}  # fmt: skip


async def what_the_fake_sends(carrier: str, seconds: float) -> list[dict[str, Any]]:
    """Every message a fake call sends while its caller says `seconds` of audio, then hangs up."""
    messages: list[dict[str, Any]] = []

    async def receive(ws: ServerConnection) -> None:
        async for message in ws:
            messages.append(json.loads(message))

    async with serve(receive, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        call = CarrierCall(carrier, f"ws://127.0.0.1:{port}")
        await call.open()
        await call.handshake()
        await call.say(bytes(2 * round(seconds * RATE)))
        await call.hang_up()
    return messages


@pytest.mark.parametrize("carrier", sorted(FRAMINGS))
async def test_a_fake_carrier_numbers_its_messages_and_frames_its_audio_as_the_carrier_does(carrier: str) -> None:
    messages = await what_the_fake_sends(carrier, 0.4)
    numbered = [m for m in messages if NUMBER[carrier] in m]
    assert numbered[0]["event"] == "start"
    assert [int(m[NUMBER[carrier]]) for m in numbered] == list(range(1, len(numbered) + 1))
    media = [m for m in messages if m["event"] == "media"]
    assert media, "the caller's audio"
    bytes_per_sample = 2 if carrier == "exotel" else 1  # 16-bit PCM, or μ-law
    samples = {len(base64.b64decode(m["media"]["payload"])) // bytes_per_sample for m in media}
    assert samples == {round(FRAMINGS[carrier].frame_seconds * RATE)}
