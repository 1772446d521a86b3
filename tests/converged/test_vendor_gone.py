"""A converged call whose vendor is gone for good is never left open and silent: the caller hears words
saying so, the session ends, and its timeline names the case in one `error` event. Each way the
vendors end a session, against their fakes, with the real bot host and examples/realtime under a
local dispatcher: OpenAI at its cap (`session_expired`, close 1001), Gemini refusing a resumption after
its `goAway` and close, and either vendor unreachable as the session starts (its fake stopped before
the fleet's next session: the next call's connect is refused)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
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
from tests.support.waiting import until
from voicefleet.loadtest.audio import loud_segments, read_wav
from voicefleet.loadtest.rail import offer_url
from voicefleet.loadtest.webrtc import WebRTCClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
ENDED_WITHIN = 30.0  # the words (~4 s) and the end, on a busy machine; the idle timeout is 300 s
WORDS_SECONDS = 2.0  # loud audio heard after the fault: the recorded line, not the fake's 0.4 s tone
REFUSED = (1007, "Request contains an invalid argument.")

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


def unreachable_at_the_next_start(dispatcher: DispatcherProcess, server: FakeServer) -> None:
    """The vendor's fake stopped: the fleet's next session cannot reach it, and says so and ends."""
    server.__exit__(None, None, None)
    errors, ended = asyncio.run(_vendor_gone(dispatcher.base_url, None))
    assert [e["reason"] for e in errors] == ["vendor_unreachable"], errors
    assert "Connect call failed" in errors[0]["detail"] or "Connection refused" in errors[0]["detail"], errors
    assert ended["reason"] == "vendor_ended", ended


def test_openai_at_its_cap_or_unreachable_at_the_start_tells_the_caller_and_ends_the_session(tmp_path: Path) -> None:
    fake = FakeOpenAIRealtime(KEY, delay_seconds=0.2, answer_seconds=0.4)

    async def cap() -> None:
        assert await asyncio.to_thread(fake.end_sessions, 1001, "", EXPIRED) == 1

    with fleet_whose_vendor_goes(tmp_path, fake) as (dispatcher, server):
        errors, ended = asyncio.run(_vendor_gone(dispatcher.base_url, cap))
        assert [e["reason"] for e in errors] == ["vendor_cap"], errors
        assert "session_expired" in errors[0]["detail"] and "maximum duration" in errors[0]["detail"]
        assert ended["reason"] == "vendor_ended", ended
        unreachable_at_the_next_start(dispatcher, server)


def test_gemini_refusing_a_resumption_or_unreachable_at_the_start_tells_the_caller_and_ends_the_session(
        tmp_path: Path) -> None:
    fake = FakeGeminiLive(GEMINI_KEY, delay_seconds=0.2, answer_seconds=0.4)

    async def refused() -> None:
        fake.refuse_resumption = REFUSED
        assert await asyncio.to_thread(fake.go_away, 0.2) == 1

    with fleet_whose_vendor_goes(tmp_path, fake) as (dispatcher, server):
        errors, ended = asyncio.run(_vendor_gone(dispatcher.base_url, refused))
        assert fake.refused == [REFUSED]
        assert [e["reason"] for e in errors] == ["vendor_resumption_refused"], errors
        assert REFUSED[1] in errors[0]["detail"] and "Deadline expired" in errors[0]["detail"], errors
        assert ended["reason"] == "vendor_ended", ended
        unreachable_at_the_next_start(dispatcher, server)


async def _vendor_gone(base_url: str, fault: Fault | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One call: a turn answered (with a fault to cause), the fault, then what the caller heard from it
    on and the session's end; returns the timeline's `error` events and its `ended`."""
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
            heard = sum(s.end - s.start for s in loud_segments(rec.times, rec.levels) if s.start > faulted_at)
            assert heard >= WORDS_SECONDS, (heard, loud_segments(rec.times, rec.levels))

        # Over with its bot's error (the vendor's end): `failed`, as the list and the page say too.
        async def status_failed() -> bool:
            return bool((await api.get(f"/sessions/{session_id}")).json()["status"] == "failed")

        _: bool = await until(status_failed, "the session's status failed", timeout=ENDED_WITHIN, interval=0.2)
        timeline = (await api.get(f"/sessions/{session_id}/timeline")).json()["events"]
    return [e for e in timeline if e.get("event") == "error"], end
