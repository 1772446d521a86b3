"""A session whose pipeline has a service that can no longer do its job (Pipecat's unusable
processor, as Deepgram's STT that cannot reach Deepgram): the session keeps running, as Pipecat
lets the bot decide, but GET /sessions says what broke (its `error`, which the bot reports over its
channel, as in the cloud) instead of a plain `joined` until the idle timeout, and the bot's log
lines in the dispatcher's console name their session."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support.http_client import api_client
from tests.support.processes import run_dispatcher
from tests.support.webrtc_client import WebRTCClient

REPO = Path(__file__).resolve().parents[3]
BOT = REPO / "tests" / "bots" / "unusable_service.py"


async def test_an_unusable_service_shows_in_the_session_and_the_log_names_the_session(tmp_path: Path) -> None:
    # A cold Pipecat bot: its start is given a busy machine's time, not the default 30 s.
    env = {"RESERVE_MAX_IDLE": "0", "BOT_FILE": str(BOT), "VOICEFLEET_ICE_LOOPBACK": "1", "START_WAIT_SECONDS": "120"}
    with run_dispatcher(tmp_path, env) as dispatcher:
        async with api_client(base_url=dispatcher.base_url, timeout=150) as api:
            started = await api.post("/start?wait=started", json={})
            assert started.status_code == 201, started.text
            session_id = started.json()["session_id"]
            async with WebRTCClient(f"{dispatcher.base_url}/sessions/{session_id}/api/offer", ice_loopback=True):
                # The bot starts the user's pipeline as the offer arrives, so the processor's error
                # can be reported before the peer connects: wait for both, in whichever order.
                session: dict[str, object] = {}
                for _ in range(300):
                    session = (await api.get(f"/sessions/{session_id}")).json()
                    if "UnreachableSTT" in str(session.get("error")) and session.get("status") != "started":
                        break
                    await asyncio.sleep(0.1)
                assert session["status"] == "joined", session  # still running: the bot decides
                assert "UnreachableSTT" in str(session["error"]), session
                assert "cannot reach the speech service" in str(session["error"]), session
        log = dispatcher.log()
    degraded = [line for line in log.splitlines() if "session degraded" in line]
    assert degraded and all(f"session {session_id}" in line for line in degraded), log[-3000:]
