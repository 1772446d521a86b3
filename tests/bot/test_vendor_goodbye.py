"""The vendor's goodbye (bot/vendor_goodbye.py) said through a real Pipecat pipeline: `say` returns only
once the output transport has played the whole line, however slowly it plays (a busy host), and a
transport stuck on a write still lets the session end, after the line's length and a bounded wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from bot import vendor_goodbye
from bot.vendor_goodbye import Goodbye
from tests.bot.speaking_pipeline import LINE_SAMPLES, RATE, Speaker, caller_on_the_line, line


@dataclass
class Call:
    goodbye: Goodbye
    speaker: Speaker


@pytest.fixture
async def call(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Call]:
    monkeypatch.setattr(vendor_goodbye, "_lines", {vendor_goodbye.UNREACHABLE: line()})
    goodbye, speaker = Goodbye(), Speaker(request.param)
    async with caller_on_the_line(goodbye, speaker):
        yield Call(goodbye, speaker)


@pytest.mark.parametrize("call", [1.0, 2.5], indirect=True, ids=["real_time", "slower_than_real_time"])
async def test_the_line_has_been_played_whole_when_say_returns(call: Call) -> None:
    assert await call.goodbye.say(unreachable=True) == LINE_SAMPLES / RATE
    assert call.speaker.heard == LINE_SAMPLES  # its last part-chunk too


@pytest.mark.parametrize("call", [1000.0], indirect=True, ids=["stuck"])
async def test_a_transport_that_never_plays_the_line_out_still_lets_the_session_end(
        call: Call, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vendor_goodbye, "PLAYOUT_LIMIT_SECONDS", 0.5)
    began = time.monotonic()
    assert await asyncio.wait_for(call.goodbye.say(unreachable=True), 30) == LINE_SAMPLES / RATE
    assert time.monotonic() - began >= LINE_SAMPLES / RATE + 0.5  # it waited for the transport first
    assert call.speaker.heard == 0
