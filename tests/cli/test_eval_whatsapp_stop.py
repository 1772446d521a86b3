"""`voicefleet eval`'s WhatsApp call never leaves its session running: once the eval entry answered, a caller
whose WebRTC connection then fails, or a run stopped (Ctrl-C) while it connects, still stops the session
the entry started. A keyed in-process dispatcher whose bot is the stand-in (tests/dispatcher/standin_bot.py:
its answer is no SDP aiortc takes, so the caller's connection fails right after the answer, as a bot
unreachable over ICE fails it later); Meta's side is the strict fake, which hears nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.fakes.server import serve
from tests.fakes.whatsapp import PHONE_NUMBER_ID, FakeWhatsApp
from tests.phone.test_whatsapp_webhook import Meta, dispatcher
from voicefleet.evals.call import run_call
from voicefleet.evals.outcome import CallResult, Target
from voicefleet.evals.scenario import Scenario
from voicefleet.loadtest.whatsapp_line import WhatsAppLine

KEY = "support-key-0123456789abcdef"
KEYS = {"DISPATCHER_API_KEYS": f"support:{KEY}", "BOT_CHANNEL_TOKEN": "chan-token-0123456789abcdef0123456789"}
SCENARIO = Scenario.model_validate({"name": "wa", "transport": "whatsapp", "turns": [{"say": "hi"}]})


@pytest.fixture
async def meta(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Meta]:
    monkeypatch.setenv("STANDIN_MODE", "serve")
    with serve(FakeWhatsApp()) as fake:
        async with dispatcher(fake, numbers=f"{PHONE_NUMBER_ID}=support", keys=KEYS) as running:
            yield running
        assert fake.calls == []


async def placed(meta: Meta) -> CallResult:
    target = Target(f"http://127.0.0.1:{meta.dispatcher.port}", KEY, None)
    async with httpx.AsyncClient(timeout=30) as http:
        return await run_call(target, SCENARIO, http, "run-1")


async def still_running(meta: Meta) -> list[str]:
    listed = await meta.dispatcher.client.get("/sessions", params={"status": "active"},
                                              headers={"Authorization": f"Bearer {KEY}"})
    return [s["session_id"] for s in listed.json()["sessions"]]


async def test_a_caller_whose_connection_fails_after_the_answer_stops_the_session(meta: Meta) -> None:
    result = await placed(meta)
    assert any("could not connect" in p for p in result.problems), result.problems
    assert meta.launches and result.session_id == meta.launches[0]  # the entry's session, named in its answer
    assert await still_running(meta) == []


async def test_a_run_stopped_while_the_caller_connects_stops_the_session(
        meta: Meta, monkeypatch: pytest.MonkeyPatch) -> None:
    answered = WhatsAppLine._signal

    async def then_stopped(line: WhatsAppLine, offer: dict[str, Any]) -> dict[str, Any]:
        answer = await answered(line, offer)
        caller = asyncio.current_task()
        assert caller is not None
        caller.cancel()  # Ctrl-C, once the entry answered and before the connection is up
        return answer

    monkeypatch.setattr(WhatsAppLine, "_signal", then_stopped)
    result = await placed(meta)
    assert result.interrupted and result.session_id == meta.launches[0], result
    assert await still_running(meta) == []
