"""A WebRTC session held by another region still talks: the client speaks only to the region it
reached, its offer is relayed to the region whose bot takes it, and the parrot answers over real
WebRTC (real dispatchers, a real bot, aiortc)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bot.conftest import SPEECH_WAV
from tests.dispatcher.conftest import API_KEY
from tests.regions.support import reachable, regions, until
from tests.support.http_client import api_client
from tests.support.webrtc_client import WebRTCClient

AUTH = {"Authorization": f"Bearer {API_KEY}"}
PARROT = {"LOCAL_BOT_COMMAND": "", "STANDIN_MODE": "", "RESERVE_MAX_IDLE": "0", "RESERVE_MIN_IDLE": "0"}


@pytest.mark.slow  # real dispatchers, a real bot, real WebRTC
async def test_a_session_held_by_another_region_talks_through_the_region_the_client_reached(tmp_path: Path) -> None:
    with regions(tmp_path, ("eu", "us"), {"eu": PARROT, "us": PARROT}) as (_, running):
        until(lambda: reachable(running["eu"], "us"), 60)
        async with api_client(base_url=running["eu"].base_url, headers=AUTH, timeout=60) as eu:
            answer = await eu.post("/start?wait=started", json={"body": {}, "region": "us"})
            assert answer.status_code == 201, answer.text
            started = answer.json()
            assert started["region"] == "us"
            async with WebRTCClient(running["eu"].base_url + started["offer_url"], headers=AUTH,
                                    connect_timeout=30) as client:
                result = await client.talk(SPEECH_WAV, listen_seconds=15, until_reply=True)
            assert result.replied, result.summary()
