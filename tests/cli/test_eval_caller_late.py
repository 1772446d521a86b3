"""A WebRTC caller that could not send its speech in time (its own process behind real time) fails its
call as the caller's lag, counted among the calls whose caller fell behind, never as a traceback or a
failure of the bot's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from voicefleet.evals import call
from voicefleet.evals.outcome import Target
from voicefleet.evals.report import inconclusive
from voicefleet.evals.scenario import load_scenario
from voicefleet.loadtest.lag import SpeechLate

SCENARIO = Path(__file__).resolve().parents[2] / "examples" / "booking" / "scenarios" / "opening_hours.toml"


async def test_a_caller_whose_speech_could_not_be_sent_in_time_is_a_call_whose_caller_fell_behind(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def start(*arguments: Any) -> dict[str, Any]:
        arguments[-1].session_id = "s" * 24  # the call's result, as the real start records it
        return {"session_id": "s" * 24}

    async def converse(*_: Any) -> None:
        raise SpeechLate("the caller's speech was not all sent within 6.7 s (6.2 s behind)", 6.2)

    async def after(*_: Any) -> None:
        return None

    monkeypatch.setattr(call, "_start", start)
    monkeypatch.setattr(call, "_converse", converse)
    monkeypatch.setattr(call, "_session_after", after)
    async with httpx.AsyncClient() as http:
        result = await call.run_call(Target("http://127.0.0.1:9", None, None), load_scenario(SCENARIO), http, "run")
    assert not result.passed and not result.keeps_time() and result.caller_behind == 6.2
    assert result.problems == ["the caller fell behind real time: the caller's speech was not all sent within "
                               "6.7 s (6.2 s behind)"]
    assert inconclusive([result]) == {"calls": 1, "failed": 1, "caller_behind_s": 6.2, "sessions": ["s" * 24]}
