"""A converged model slow to answer is on the session's timeline: a `slow_answer` event naming the
service and how long the caller waited, for each vendor (the fakes' scripted delay before the first
audio); a model answering in time leaves none."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.bot.conftest import SPEECH_WAV
from tests.fakes.gemini_live import FakeGeminiLive
from tests.fakes.openai_realtime import FakeOpenAIRealtime
from tests.support.gemini_live import KEY as GEMINI_KEY
from tests.support.gemini_live import gemini_fleet
from tests.support.http_client import api_client
from tests.support.realtime_turns import KEY, realtime_fleet
from tests.support.waiting import until
from voicefleet.loadtest.audio import read_wav
from voicefleet.loadtest.rail import offer_url
from voicefleet.loadtest.webrtc import WebRTCClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
SLOW = 2.5  # the vendor's seconds to its first audio: past the bound with its VAD's wait, as in the field


@pytest.mark.parametrize(("vendor", "delays"), [("openai", [SLOW, 0.2]), ("gemini", [SLOW])])
def test_a_slow_model_answer_is_on_the_timeline(tmp_path: Path, vendor: str, delays: list[float]) -> None:
    # One fleet for a vendor's delays: the fake reads its delay at each answer, and each call is served
    # by the dispatcher's next warm bot.
    fake: FakeOpenAIRealtime | FakeGeminiLive
    if vendor == "openai":
        fake = openai = FakeOpenAIRealtime(KEY, answer_seconds=0.4)
        fleet = realtime_fleet(tmp_path, openai)
    else:
        fake = gemini = FakeGeminiLive(GEMINI_KEY, answer_seconds=0.4)
        fleet = gemini_fleet(tmp_path, gemini)
    with fleet as dispatcher:
        for delay in delays:
            fake.delay_seconds = delay
            events = asyncio.run(_one_turn(dispatcher.base_url, expected=delay >= 1.0))
            slow = [e for e in events if e.get("event") == "slow_answer"]
            if delay < 1.0:
                assert slow == [], (delay, slow)
                continue
            assert len(slow) == 1, (delay, events)
            service = "OpenAIRealtimeLLMService" if vendor == "openai" else "GeminiLiveLLMService"
            assert slow[0]["detail"].startswith(service) and "the model's first audio came" in slow[0]["detail"], slow


async def _one_turn(base_url: str, expected: bool) -> list[dict[str, Any]]:
    """One answered turn, then the session's timeline (once it has a `slow_answer`, when one is `expected`)."""
    async with api_client(base_url=base_url, timeout=30) as api:
        answer = (await api.post("/start", json={})).json()
        session_id = answer["session_id"]

        async def timeline() -> list[dict[str, Any]] | None:
            events: list[dict[str, Any]] = (await api.get(f"/sessions/{session_id}/timeline")).json()["events"]
            return events if not expected or any(e.get("event") == "slow_answer" for e in events) else None

        async with WebRTCClient(offer_url(base_url, answer), connect_timeout=60) as client:
            assert (await client.talk(read_wav(SPEECH_WAV), listen_seconds=15, until_reply=True)).replied
            events: list[dict[str, Any]] | None = await until(timeline, "the session's timeline", timeout=10)
        await api.delete(f"/sessions/{session_id}")
        assert events is not None
        return events
