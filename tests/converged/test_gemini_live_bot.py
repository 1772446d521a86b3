"""The converged example bot on Gemini Live runs like any other: warm under a real dispatcher, called
over WebRTC, it streams the caller's speech to the model (the fake, reached by the SDK's base URL and a
trusted CA) and plays the answers back. The vendor's end of a connection that Pipecat cannot resume
past (its `goAway`, the close, then a refused resumption), a key the vendor refuses and a vendor that
cannot be reached each reach the session's timeline and its `error` at once, in the vendor's words."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.bot.conftest import SPEECH_WAV
from tests.fakes.gemini_live import MODELS, FakeGeminiLive
from tests.support.gemini_live import KEY, gemini_env, gemini_fleet
from tests.support.http_client import api_client
from tests.support.ports import free_port
from tests.support.realtime_turns import call, session_error, warm_fleet
from tests.support.waiting import until
from voicefleet.loadtest.audio import read_wav
from voicefleet.loadtest.rail import offer_url
from voicefleet.loadtest.webrtc import WebRTCClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
SOON = 1.0  # from the vendor's close to the session's error event, on the dispatcher's own clock
POLL = 10.0  # how long the test looks: room for a busy machine, never part of what is measured
REFUSED = (1011, "The service is currently unavailable.")


def test_a_warm_gemini_bot_answers_each_turn_with_the_models_audio(tmp_path: Path) -> None:
    fake = FakeGeminiLive(KEY, delay_seconds=0.3, answer_seconds=0.6)
    with gemini_fleet(tmp_path, fake) as dispatcher:
        turns = asyncio.run(call(dispatcher.base_url, fake, read_wav(SPEECH_WAV), turns=2))
        log = dispatcher.log()
    assert len(turns) == 2, log[-3000:]
    conn = fake.connections[-1]
    assert conn.model == MODELS[0] and conn.audio_bytes > 0 and not fake.refused
    for turn in turns:
        assert turn.model >= fake.delay_seconds and turn.heard > turn.model
        assert 0 < turn.beyond_model < 1.0


def test_go_away_then_a_refused_resumption_reaches_the_timeline_and_error_at_once(tmp_path: Path) -> None:
    fake = FakeGeminiLive(KEY, delay_seconds=0.2, answer_seconds=0.4)
    with gemini_fleet(tmp_path, fake) as dispatcher:
        asyncio.run(_go_away_unresumed(dispatcher.base_url, fake))
    assert fake.refused == [REFUSED] and len(fake.connections) == 1
    assert fake.connections[0].resumed_from is None and fake.connections[0].closed_with is not None


async def _go_away_unresumed(base_url: str, fake: FakeGeminiLive) -> None:
    async with api_client(base_url=base_url, timeout=30) as api:
        answer = (await api.post("/start", json={})).json()
        session_id = answer["session_id"]
        async with WebRTCClient(offer_url(base_url, answer), connect_timeout=60) as client:
            assert (await client.talk(read_wav(SPEECH_WAV), listen_seconds=10, until_reply=True)).replied
            fake.refuse_resumption = REFUSED
            assert await asyncio.to_thread(fake.go_away, 0.2) == 1

            async def reported() -> list[dict[str, Any]]:
                timeline = (await api.get(f"/sessions/{session_id}/timeline")).json()
                return [e for e in timeline.get("events", []) if e.get("event") == "error"]

            events = await until(reported, "the refused resumption in the timeline", timeout=POLL, interval=0.1)
            assert REFUSED[1] in str(events), events
            assert fake.refused_at and events[0]["at"] - fake.refused_at[0] < SOON, (events, fake.refused_at)
            session = (await api.get(f"/sessions/{session_id}")).json()
            assert REFUSED[1] in str(session["error"]), session


@pytest.mark.parametrize("vendor", ["refuses the key", "cannot be reached"])
def test_a_vendor_that_refuses_or_cannot_be_reached_is_the_sessions_error_at_once(tmp_path: Path, vendor: str) -> None:
    fake = FakeGeminiLive(KEY)
    if vendor == "refuses the key":
        with gemini_fleet(tmp_path, fake, key="AIza-revoked") as dispatcher:
            error, late = asyncio.run(_error_and_lateness(dispatcher.base_url))
        assert fake.refused and not fake.connections
        assert "API key not valid. Please pass a valid API key." in error
    else:
        with warm_fleet(tmp_path, gemini_env(f"https://127.0.0.1:{free_port()}")) as dispatcher:
            error, late = asyncio.run(_error_and_lateness(dispatcher.base_url))
        assert "Connect call failed" in error or "Connection refused" in error, error
    assert "GeminiLiveLLMService" in error, error
    assert late < SOON  # the bot connects as the caller joins: the error is there within a second of it


async def _error_and_lateness(base_url: str) -> tuple[str, float]:
    """The session's error, and how long after the caller joined its timeline had it (negative: before)."""
    session = await session_error(base_url, timeout=POLL)
    async with api_client(base_url=base_url, timeout=30) as api:
        events = (await api.get(f"/sessions/{session['session_id']}/timeline")).json()["events"]
    at = {e["event"]: e["at"] for e in reversed(events)}  # each kind's first
    return str(session["error"]), at["error"] - at.get("joined", at["error"])  # no join: the error came first
