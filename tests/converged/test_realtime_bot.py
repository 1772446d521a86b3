"""The OpenAI Realtime example bot runs like any other: warm under a real dispatcher, called over
WebRTC, it streams the caller's speech to the model (the fake, through its base URL) and plays the
model's answer back; the fake's own share of each turn is known, so the rest of it is too."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.bot.conftest import SPEECH_WAV
from tests.fakes.openai_realtime import FakeOpenAIRealtime
from tests.support.realtime_turns import KEY, call, realtime_fleet
from voicefleet.loadtest.audio import read_wav

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_a_warm_realtime_bot_answers_each_turn_with_the_models_audio(tmp_path: Path) -> None:
    fake = FakeOpenAIRealtime(KEY, delay_seconds=0.3, answer_seconds=0.6)
    with realtime_fleet(tmp_path, fake) as dispatcher:
        turns = asyncio.run(call(dispatcher.base_url, fake, read_wav(SPEECH_WAV), turns=2))
        log = dispatcher.log()
    assert len(turns) == 2, log[-3000:]
    conn = fake.connections[-1]
    assert conn.model == "gpt-realtime-2.1" and "session.update" in conn.received
    assert not [e for e in conn.sent if e["type"] == "error"], conn.sent
    for turn in turns:
        # The model's span holds at least its scripted delay; the caller heard the answer after it. How
        # long after is a figure for bench/realtime_turns.py, not a bound: on a busy host it took 1.85 s.
        assert turn.model >= fake.delay_seconds and turn.heard > turn.model
        assert turn.beyond_model > 0
