"""The converged example bot on Gemini Live runs like any other: warm under a real dispatcher, called
over WebRTC, it streams the caller's speech to the model (the fake, reached by the SDK's base URL and a
trusted CA) and plays the answers back. The vendor's end of a connection that Pipecat cannot resume
past (its `goAway`, the close, then a refused resumption), a key the vendor refuses and a vendor that
cannot be reached each reach the session's timeline and its `error` at once, in the vendor's words
(the refused resumption and the vendor unreachable: test_vendor_gone.py, whose calls end that way)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.bot.conftest import SPEECH_WAV
from tests.fakes.gemini_live import MODELS, FakeGeminiLive
from tests.support.gemini_live import KEY, gemini_fleet
from tests.support.http_client import api_client
from tests.support.realtime_turns import call, session_error
from voicefleet.loadtest.audio import read_wav

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
SOON = 1.0  # from the caller's join to the session's error event, on the dispatcher's own clock
POLL = 10.0  # how long the test looks: room for a busy machine, never part of what is measured


def test_a_warm_gemini_bot_answers_each_turn_and_a_key_the_vendor_refuses_is_the_sessions_error_at_once(
        tmp_path: Path) -> None:
    """One fleet: a call answered turn by turn, then the fleet's key revoked at the vendor (the fake
    accepts another from then on), so the next call's bot is refused at its set-up."""
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

        answered = len(fake.connections)
        fake.api_key = "AIza-the-key-issued-after-the-fleets-was-revoked"
        error, late = asyncio.run(_error_and_lateness(dispatcher.base_url))
    assert fake.refused and len(fake.connections) == answered, "the refused set-up opened no connection"
    assert "API key not valid. Please pass a valid API key." in error
    assert "GeminiLiveLLMService" in error, error
    assert late < SOON  # the bot connects as the caller joins: the error is there within a second of it


async def _error_and_lateness(base_url: str) -> tuple[str, float]:
    """The session's error, and how long after the caller joined its timeline had it (negative: before)."""
    session = await session_error(base_url, timeout=POLL)
    async with api_client(base_url=base_url, timeout=30) as api:
        events = (await api.get(f"/sessions/{session['session_id']}/timeline")).json()["events"]
    at = {e["event"]: e["at"] for e in reversed(events)}  # each kind's first
    return str(session["error"]), at["error"] - at.get("joined", at["error"])  # no join: the error came first
