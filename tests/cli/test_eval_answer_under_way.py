"""An answer still coming when the turn's `listen_ms` is up is heard out, not cut in two: the caller's
own listening (`_hear`) hears a starved booking-line bot's recorded RTVI messages, at their recorded
pace made ten times faster."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from voicefleet.evals import call
from voicefleet.evals.answer_end import under_way
from voicefleet.evals.phases import Phases
from voicefleet.loadtest.webrtc import WebRTCClient

# bench/answer_split.py --stalls: the booking line's answer to "Yes please" on a starved host, seconds
# from when the caller began listening (its 15 s listen_ms). Its first sentence took 9 s to play.
BOOKED = "Booked: a table for two tomorrow at seven."
RECORDED: list[tuple[float, str, dict[str, Any]]] = [
    (1.371, "user-transcription", {"text": "yes please", "final": True}),
    (2.045, "user-stopped-speaking", {}),
    (2.745, "bot-llm-started", {}),
    (2.761, "bot-llm-text", {"text": f"{BOOKED} Is there anything else?"}),
    (2.806, "bot-llm-stopped", {}),
    (2.988, "bot-tts-started", {}),
    (3.348, "bot-started-speaking", {}),
    (3.430, "bot-output", {"text": BOOKED, "spoken": False}),
    (3.430, "bot-tts-stopped", {}),
    (12.611, "bot-output", {"text": BOOKED, "spoken": True}),
    (12.612, "bot-output", {"text": "Is there anything else?", "spoken": False}),
    (14.047, "bot-output", {"text": "Is there anything else?", "spoken": True}),
    (14.091, "bot-stopped-speaking", {}),
]
PACE = 0.1  # the recording's seconds, ten times faster


def message(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"label": "rtvi-ai", "type": kind, **({"data": data} if data else {})}


async def heard(recorded: list[tuple[float, str, dict[str, Any]]], listen: float) -> tuple[str, float]:
    """What the caller (a WebRTC client whose data channel is the recording) heard of the replayed
    answer with `listen` seconds to wait, and when it stopped listening."""
    client = WebRTCClient("http://127.0.0.1:9/api/offer")

    async def bot() -> None:
        began = time.monotonic()
        for at, kind, data in recorded:
            await asyncio.sleep(max(0.0, began + at * PACE - time.monotonic()))
            client.rtvi_messages.append(message(kind, data))
            await client._notify_rtvi()

    playing = asyncio.create_task(bot())
    began = time.monotonic()
    try:
        answer = await call._hear(client, since=0, listen=listen, phases=Phases())
    finally:
        playing.cancel()
        await client.close()
    return answer.text, time.monotonic() - began


async def test_an_answer_still_playing_when_the_wait_is_up_is_heard_whole() -> None:
    """The wait ends between the two sentences (1.3 s; the second is spoken at 1.40 s): the answer
    is both, heard until the bot stopped speaking (past the wait, its quiet is not waited for), not
    cut at its first."""
    text, took = await heard(RECORDED, listen=1.3)
    assert text == f"{BOOKED} Is there anything else?"
    assert took >= 14.091 * PACE


async def test_a_bot_that_has_not_begun_by_the_end_of_the_wait_ends_the_turn_then() -> None:
    """No answer begun (the caller's words still being recognised): the wait is the turn's."""
    text, took = await heard(RECORDED[:2], listen=0.3)
    assert text == "" and took < 1.0


async def test_a_bot_that_never_stops_speaking_is_heard_only_so_long(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(call, "LONGEST_ANSWER", 0.3)
    text, took = await heard(RECORDED[:10], listen=1.3)  # speaking, its second sentence never said
    assert text == BOOKED and took < 1.3 + 0.3 + 1.0


def test_the_recorded_answer_is_under_way_from_its_response_to_its_end() -> None:
    messages = [message(kind, data) for _, kind, data in RECORDED]
    kinds = [m["type"] for m in messages]
    begun, ended = kinds.index("bot-llm-started"), kinds.index("bot-stopped-speaking")
    assert [under_way(messages[:n]) for n in range(begun + 1, ended + 1)] == [True] * (ended - begun)
    assert not under_way(messages)
    assert not under_way(messages[:begun])  # the caller's words recognised, no response yet
    # A bot with nothing to say (an empty response): nothing is coming.
    assert not under_way([message("bot-llm-started", {}), message("bot-llm-stopped", {})])
