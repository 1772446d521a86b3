"""A warm local session end to end: a real reserve bot, claimed, talked to over real WebRTC."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.e2e.conftest import SPEECH
from tests.support.audio import rms
from tests.support.http_client import api_client
from tests.support.processes import run_dispatcher
from tests.support.webrtc_client import WebRTCClient

pytestmark = pytest.mark.slow  # the real bot, real WebRTC and real speech: tens of seconds


@pytest.fixture(scope="module")
def warm_dispatcher(tmp_path_factory: pytest.TempPathFactory):
    with run_dispatcher(tmp_path_factory.mktemp("warm"), {"RESERVE_MIN_IDLE": "1"}) as running:
        yield running


async def metric(api: httpx.AsyncClient, prefix: str) -> float:
    for line in (await api.get("/metrics")).text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_claimed_reserve_bot_answers_speech_and_reports_ready_and_first_audio(warm_dispatcher):
    idle = 'voicefleet_reserve_bots{provider="local",state="idle"}'
    async with api_client(base_url=warm_dispatcher.base_url, timeout=30) as api:
        for _ in range(600):  # the reserve bot imports Pipecat first (~1-2 s, longer on a busy host)
            if await metric(api, idle) >= 1:
                break
            await asyncio.sleep(0.1)
        started = await api.post("/start", json={"body": {"test": "warm"}})
        assert started.status_code == 201, started.text
        session = started.json()
        assert session["status"] == "started"  # claimed: the bot acknowledged, nothing to wait for
        assert await metric(api, 'voicefleet_reserve_claims_total{outcome="warm_hit"') == 1

        async with WebRTCClient(warm_dispatcher.base_url + session["offer_url"]) as client:
            result = await client.talk(SPEECH, listen_seconds=3.0)
        assert result.replied, result.summary()
        assert rms(result.reply_audio) > 500, result.summary()
        assert await metric(api, 'voicefleet_start_to_ready_seconds_count{path="warm"') == 1

        assert (await api.delete(f"/sessions/{session['session_id']}")).status_code == 204
        assert (await api.get(f"/sessions/{session['session_id']}")).json()["status"] == "ended"
