"""A converged call whose vendor is gone for good is never left open and silent: the caller hears words
saying so, the session ends, and its timeline names the case in one `error` event. Each way the
vendors end a session, against their fakes, with the real bot host and examples/realtime under a
local dispatcher: OpenAI at its cap (`session_expired`, close 1001), Gemini refusing a resumption after
its `goAway` and close, and Gemini unreachable as the session starts (its fake stopped before the
fleet's next session: the next call's connect is refused). Each case's error is the session's too
(GET /sessions/{id}), in the vendor's words; Gemini's refusal, and its connect refused, reach it at once.
OpenAI's connect refused is told apart the same way, from the words its service reports
(tests/bot/test_vendor_end.py), by the same host, goodbye and end as Gemini's here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.bot.conftest import SPEECH_WAV
from tests.fakes.gemini_live import FakeGeminiLive
from tests.fakes.openai_realtime import EXPIRED, FakeOpenAIRealtime
from tests.fakes.server import FakeServer
from tests.support.channel_certs import channel_certs
from tests.support.gemini_live import KEY as GEMINI_KEY
from tests.support.gemini_live import gemini_env
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess
from tests.support.realtime_turns import KEY, realtime_env, warm_fleet
from tests.support.waiting import until, within
from voicefleet.loadtest.audio import loud_segments, read_wav
from voicefleet.loadtest.rail import offer_url
from voicefleet.loadtest.webrtc import WebRTCClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
ENDED_WITHIN = 30.0  # the words (~4 s) and the end, on a busy machine; the idle timeout is 300 s
WORDS_SECONDS = 2.0  # loud audio heard after the fault: the recorded line, not the fake's 0.4 s tone
REFUSED = (1007, "Request contains an invalid argument.")
SOON = 1.0  # Gemini's refusal (or its connect refused) to the session's error event, on the dispatcher's clock

Fault = Callable[[], Awaitable[None]]


@contextmanager
def fleet_whose_vendor_goes(log_dir: Path, fake: FakeOpenAIRealtime | FakeGeminiLive
                            ) -> Iterator[tuple[DispatcherProcess, FakeServer]]:
    """The vendor's fake served (Gemini's over TLS) and a dispatcher holding one warm bot pointed at it;
    yields the fake's server too, for the test to stop: the vendor gone for the sessions after."""
    if isinstance(fake, FakeOpenAIRealtime):
        server = FakeServer(fake.app())
        with server:
            fake.url = server.url.replace("http://", "ws://")
            with warm_fleet(log_dir, realtime_env(fake.url)) as dispatcher:
                yield dispatcher, server
    else:
        certs = channel_certs(log_dir, "gemini")
        server = FakeServer(fake.app(), tls=(certs.cert, certs.key))
        with server:
            fake.url, fake.ca = server.url, certs.ca
            with warm_fleet(log_dir, gemini_env(fake.url, GEMINI_KEY, certs.ca)) as dispatcher:
                yield dispatcher, server


def unreachable_at_the_next_start(dispatcher: DispatcherProcess, server: FakeServer, service: str) -> None:
    """The vendor's fake stopped: the fleet's next session cannot reach it, and says so and ends. The bot
    connects as the caller joins: its error is there within a second of the join (or before it)."""
    server.__exit__(None, None, None)
    gone = asyncio.run(_vendor_gone(dispatcher.base_url, None))
    assert [e["reason"] for e in gone.errors] == ["vendor_unreachable"], gone.errors
    assert "Connect call failed" in gone.error or "Connection refused" in gone.error, gone.error
    assert service in gone.error, gone.error
    assert gone.ended["reason"] == "vendor_ended", gone.ended
    if service == "GeminiLiveLLMService":
        assert gone.errors[0]["at"] - gone.at.get("joined", gone.errors[0]["at"]) < SOON, gone.at


@dataclass(frozen=True)
class Gone:
    """What a call whose vendor went left: its timeline's `error` events and `ended`, each event kind's
    first time, and the session's own `error` (GET /sessions/{id})."""

    errors: list[dict[str, Any]]
    ended: dict[str, Any]
    at: dict[str, float]
    error: str


def test_openai_at_its_cap_tells_the_caller_and_ends_the_session(tmp_path: Path) -> None:
    fake = FakeOpenAIRealtime(KEY, delay_seconds=0.2, answer_seconds=0.4)

    async def cap() -> None:
        assert await asyncio.to_thread(fake.end_sessions, 1001, "", EXPIRED) == 1

    with fleet_whose_vendor_goes(tmp_path, fake) as (dispatcher, _):
        gone = asyncio.run(_vendor_gone(dispatcher.base_url, cap))
        assert [e["reason"] for e in gone.errors] == ["vendor_cap"], gone.errors
        assert "session_expired" in gone.errors[0]["detail"] and "maximum duration" in gone.errors[0]["detail"]
        assert "Your session hit the maximum duration of 60 minutes" in gone.error, gone.error
        assert gone.ended["reason"] == "vendor_ended", gone.ended


def test_gemini_refusing_a_resumption_or_unreachable_at_the_start_tells_the_caller_and_ends_the_session(
        tmp_path: Path) -> None:
    fake = FakeGeminiLive(GEMINI_KEY, delay_seconds=0.2, answer_seconds=0.4)

    async def refused() -> None:
        fake.refuse_resumption = REFUSED
        assert await asyncio.to_thread(fake.go_away, 0.2) == 1

    with fleet_whose_vendor_goes(tmp_path, fake) as (dispatcher, server):
        gone = asyncio.run(_vendor_gone(dispatcher.base_url, refused))
        assert fake.refused == [REFUSED] and len(fake.connections) == 1  # refused: never resumed
        assert fake.connections[0].resumed_from is None and fake.connections[0].closed_with is not None
        assert [e["reason"] for e in gone.errors] == ["vendor_resumption_refused"], gone.errors
        assert REFUSED[1] in gone.errors[0]["detail"] and "Deadline expired" in gone.errors[0]["detail"], gone.errors
        assert gone.errors[0]["at"] - fake.refused_at[0] < SOON, (gone.errors, fake.refused_at)
        assert REFUSED[1] in gone.error, gone.error
        assert gone.ended["reason"] == "vendor_ended", gone.ended
        unreachable_at_the_next_start(dispatcher, server, "GeminiLiveLLMService")


async def _vendor_gone(base_url: str, fault: Fault | None) -> Gone:
    """One call: a turn answered (with a fault to cause), the fault, then what the caller heard from it
    on and the session's end; returns its timeline's errors and end, and the session's error."""
    async with api_client(base_url=base_url, timeout=30) as api:
        answer = (await api.post("/start", json={})).json()
        session_id = answer["session_id"]
        async with WebRTCClient(offer_url(base_url, answer), connect_timeout=60) as client:
            if fault is not None:
                assert (await client.talk(read_wav(SPEECH_WAV), listen_seconds=10, until_reply=True)).replied
                await asyncio.sleep(1.0)  # the answer's tone played out: what is heard after is not it
                faulted_at = time.monotonic()
                await fault()
            else:
                faulted_at = 0.0

            async def ended() -> dict[str, Any] | None:
                timeline = (await api.get(f"/sessions/{session_id}/timeline")).json()
                return next((e for e in timeline.get("events", []) if e.get("event") == "ended"), None)

            end: dict[str, Any] | None = await until(ended, "the session's end", timeout=ENDED_WITHIN, interval=0.2)
            assert end is not None
            rec = client.recording

            def heard() -> float:
                return sum(s.end - s.start for s in loud_segments(rec.times, rec.levels) if s.start > faulted_at)

            # The words were sent before the end; a caller short of CPU reads them later: until they are heard, or
            # the bot's audio is over and all of it read.
            await within(lambda: heard() >= WORDS_SECONDS or client.heard_out(), ENDED_WITHIN, interval=0.2)
            assert heard() >= WORDS_SECONDS, (heard(), client.heard_out(), loud_segments(rec.times, rec.levels))

        # Over with its bot's error (the vendor's end): `failed`, as the list and the page say too.
        async def status_failed() -> bool:
            return bool((await api.get(f"/sessions/{session_id}")).json()["status"] == "failed")

        _: bool = await until(status_failed, "the session's status failed", timeout=ENDED_WITHIN, interval=0.2)
        timeline = (await api.get(f"/sessions/{session_id}/timeline")).json()["events"]
        error = str((await api.get(f"/sessions/{session_id}")).json()["error"])
    return Gone([e for e in timeline if e.get("event") == "error"], end,
                {e["event"]: e["at"] for e in reversed(timeline)}, error)
