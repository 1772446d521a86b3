"""A user's bot file through the real local dispatcher (`BOT_FILE`): a warm reserve bot that runs a
canonical Pipecat bot which greets on connect, claimed by `POST /start`, heard over real WebRTC;
its body reaches `runner_args`, and the dispatcher reports its first audio."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.bot.test_user_bots import first_loud_audio
from tests.e2e.test_warm_session import metric
from tests.support.http_client import api_client
from tests.support.processes import run_dispatcher
from tests.support.webrtc_client import WebRTCClient

pytestmark = pytest.mark.slow  # real dispatcher, real bots, real WebRTC

BODY_BOT = Path(__file__).resolve().parents[1] / "bots" / "body.py"


async def test_a_warm_user_bot_greets_the_caller_and_gets_the_start_body(tmp_path: Path) -> None:
    record = tmp_path / "seen.json"
    env = {"RESERVE_MIN_IDLE": "1", "BOT_FILE": str(BODY_BOT)}
    with run_dispatcher(tmp_path, env) as dispatcher:
        async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
            idle = 'voicefleet_reserve_bots{provider="local",state="idle"}'
            for _ in range(600):  # the reserve bot imports Pipecat and the bot file first
                if await metric(api, idle) >= 1:
                    break
                await asyncio.sleep(0.1)
            started = await api.post("/start", json={"body": {"record_to": str(record), "lang": "fr"}})
            assert started.status_code == 201, started.text
            session = started.json()
            assert await metric(api, 'voicefleet_reserve_claims_total{outcome="warm_hit"') == 1

            async with WebRTCClient(dispatcher.base_url + session["offer_url"]) as client:
                await first_loud_audio(client)  # the bot spoke first: nobody said anything
            seen = json.loads(record.read_text())
            assert seen == {
                "body": {"record_to": str(record), "lang": "fr"},
                "session_id": session["session_id"],
                "kind": "SmallWebRTCRunnerArguments",
            }
            assert (await api.delete(f"/sessions/{session['session_id']}")).status_code == 204
