"""A WebRTC call in progress on the canary keeps talking through a rollback: a weight change moves
new starts only, never a live session (a machine serves one session, ever). Real dispatcher, real
bot processes of two releases (the parrot, each from its own folder), real WebRTC (aiortc)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.e2e.test_local_session import status_becomes
from tests.support.http_client import api_client
from tests.support.processes import run_dispatcher
from tests.support.speech_pauses import first_phrase
from tests.support.webrtc_client import WebRTCClient

pytestmark = pytest.mark.slow  # the real bot, real WebRTC and real speech: tens of seconds

PARROT = Path(__file__).parents[2] / "examples" / "parrot"


async def test_a_call_on_the_canary_keeps_talking_through_the_rollback(tmp_path: Path) -> None:
    canary = tmp_path / "next"
    shutil.copytree(PARROT, canary, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    env = {"BOT_RELEASES": f"stable={PARROT / 'bot.py'},next={canary / 'bot.py'}",
           "RELEASE_WEIGHTS": "stable=90,next=10", "RESERVE_MAX_IDLE": "0"}
    with run_dispatcher(tmp_path, env) as dispatcher:  # keyless and local: its one caller is also its admin
        async with api_client(base_url=dispatcher.base_url, timeout=60) as api:
            started = await api.post("/start", json={"body": {}, "release": "next"})
            assert started.status_code == 201, started.text
            session = started.json()
            assert session["release"] == "next"
            async with WebRTCClient(dispatcher.base_url + session["offer_url"], connect_timeout=30) as client:
                assert await status_becomes(api, session["session_id"], "joined")
                phrase = first_phrase()  # a turn answered is what is checked, not a long one
                before = await client.talk(phrase, listen_seconds=30.0, until_reply=True)
                assert before.replied, before.summary()

                rolled = await api.post("/releases/rollback")
                assert rolled.status_code == 200, rolled.text
                assert {r["name"]: r["weight"] for r in rolled.json()["releases"]} == {"stable": 100, "next": 0}

                after = await client.talk(phrase, listen_seconds=30.0, until_reply=True)
                assert after.replied, after.summary()  # the same call, the canary's bot, still talking
                status = (await api.get(f"/sessions/{session['session_id']}")).json()
                assert status["release"] == "next" and status["status"] == "joined", status
