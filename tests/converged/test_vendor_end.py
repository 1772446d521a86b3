"""The vendor ending a converged bot's session reaches the session at once, in the vendor's words:
its timeline holds an `error` event and GET /sessions/{id} its `error`, seconds after the model's
socket closed, whether the vendor said why in an `error` event (OpenAI's cap: test_vendor_gone.py, whose
call also hears the bot say so) or only in its close (here)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.bot.conftest import SPEECH_WAV
from tests.fakes.openai_realtime import FakeOpenAIRealtime
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess
from tests.support.realtime_turns import KEY, realtime_fleet, session_error
from tests.support.waiting import until
from voicefleet.loadtest.audio import read_wav
from voicefleet.loadtest.rail import offer_url
from voicefleet.loadtest.webrtc import WebRTCClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
SOON = 10.0  # "at once": well under any idle timeout, with room for a busy machine


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeOpenAIRealtime, DispatcherProcess]]:
    """One fake and one dispatcher for every way of ending: each call ends only its own session (the
    one session open at the fake), and the dispatcher warms a fresh bot for the next."""
    fake = FakeOpenAIRealtime(KEY, delay_seconds=0.2, answer_seconds=0.4)
    with realtime_fleet(tmp_path_factory.mktemp("vendor-end"), fake) as dispatcher:
        yield fake, dispatcher


@pytest.mark.parametrize(("code", "reason", "error", "words"), [
    (1011, "Deadline expired", None, "Deadline expired"),
    (1000, "", None, "received 1000 (OK)"),
])  # fmt: skip
def test_the_vendors_end_of_a_session_reaches_its_timeline_and_error_at_once(
        fleet: tuple[FakeOpenAIRealtime, DispatcherProcess], code: int, reason: str, error: dict[str, str] | None,
        words: str) -> None:
    fake, dispatcher = fleet
    asyncio.run(_call_ended_by_the_vendor(dispatcher.base_url, fake, code, reason, error, words))


async def _call_ended_by_the_vendor(base_url: str, fake: FakeOpenAIRealtime, code: int, reason: str,
                                    error: dict[str, str] | None, words: str) -> None:
    async with api_client(base_url=base_url, timeout=30) as api:
        answer = (await api.post("/start", json={})).json()
        session_id = answer["session_id"]
        async with WebRTCClient(offer_url(base_url, answer), connect_timeout=60) as client:
            assert (await client.talk(read_wav(SPEECH_WAV), listen_seconds=10, until_reply=True)).replied
            assert await asyncio.to_thread(fake.end_sessions, code, reason, error) == 1
            ended_at = time.monotonic()

            async def reported() -> list[dict[str, Any]]:
                timeline = (await api.get(f"/sessions/{session_id}/timeline")).json()
                return [e for e in timeline.get("events", []) if e.get("event") == "error"]

            events = await until(reported, "the vendor's end in the timeline", timeout=SOON, interval=0.1)
            assert time.monotonic() - ended_at < SOON
            assert words in str(events), events
            session = (await api.get(f"/sessions/{session_id}")).json()
            assert words in str(session["error"]), session


def test_a_model_that_refuses_the_bot_reaches_the_sessions_error_at_once(tmp_path: Path) -> None:
    fake = FakeOpenAIRealtime("sk-another-key")  # the bot's key is refused at the handshake
    with realtime_fleet(tmp_path, fake) as dispatcher:
        asyncio.run(_call_refused(dispatcher.base_url))
    assert fake.rejected and not fake.connections


async def _call_refused(base_url: str) -> None:
    session = await session_error(base_url, timeout=SOON)
    assert "OpenAIRealtimeLLMService" in str(session["error"]), session
    assert "HTTP 403" in str(session["error"]), session
