"""`voicefleet sessions` against a real dispatcher whose real bot (tests/bots/recoverable_error.py)
pushes a non-fatal `ErrorFrame` as its pipeline starts and goes on: the listing shows the error
(`bot_error`) on a session that is still `active` (so `--status active` lists it, and `--failed`
does not: the bot goes on), and once it is over it is `failed`, in the list and its own answer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from tests.support.http_client import api_client
from tests.support.processes import run_dispatcher
from tests.support.waiting import until
from tests.support.webrtc_client import WebRTCClient
from voicefleet.main import voicefleet

REPO = Path(__file__).resolve().parents[2]
BOT = REPO / "tests" / "bots" / "recoverable_error.py"


def listed(url: str, *args: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(voicefleet, ["sessions", "--json", *args], prog_name="voicefleet",
                                env={"VOICEFLEET_URL": url})
    assert result.exit_code == 0, result.output
    sessions: list[dict[str, Any]] = json.loads(result.stdout)["sessions"]
    return sessions


async def test_a_session_with_a_non_fatal_pipeline_error_stays_active_with_its_error(tmp_path: Path) -> None:
    # A cold Pipecat bot: its start is given a busy machine's time, not the default 30 s.
    env = {"RESERVE_MAX_IDLE": "0", "BOT_FILE": str(BOT), "VOICEFLEET_ICE_LOOPBACK": "1", "START_WAIT_SECONDS": "120"}
    with run_dispatcher(tmp_path, env) as dispatcher:
        url = dispatcher.base_url
        async with api_client(base_url=url, timeout=150) as api:
            started = await api.post("/start?wait=started", json={})
            assert started.status_code == 201, started.text
            session_id = started.json()["session_id"]
            async with WebRTCClient(f"{url}/sessions/{session_id}/api/offer", ice_loopback=True):
                async def reported() -> bool:
                    timeline = (await api.get(f"/sessions/{session_id}/timeline")).json()
                    return any(e.get("event") == "error" for e in timeline.get("events", []))

                await until(reported, "the bot's pipeline error in the timeline", timeout=120, interval=0.2)

                async def shown() -> dict[str, Any] | None:  # the listing is written in the background
                    found = await asyncio.to_thread(listed, url)
                    return next((s for s in found if s["session_id"] == session_id and s["error"]), None)

                entry = await until(shown, "the pipeline error in `voicefleet sessions`", timeout=60, interval=0.2)
                assert (entry["status"], entry["error"], entry["ended"]) == ("active", "bot_error", None), entry
                active = await asyncio.to_thread(listed, url, "--status", "active")
                assert [s["session_id"] for s in active] == [session_id]
                assert await asyncio.to_thread(listed, url, "--failed") == []
                live = (await api.get(f"/sessions/{session_id}")).json()
                assert live["status"] == "joined" and "FlakySTT" in str(live["error"]), live  # it goes on
            stop = await api.delete(f"/sessions/{session_id}")
            assert stop.status_code in (200, 202, 204), stop.text

            # Over, with its bot's error: failed, in the list (`--failed`) as in the session's own answer.
            async def ended() -> dict[str, Any] | None:
                found = await asyncio.to_thread(listed, url, "--failed")
                return found[0] if found else None

            entry = await until(ended, "the session's end in `voicefleet sessions --failed`", timeout=60, interval=0.2)
            assert (entry["session_id"], entry["status"], entry["error"]) == (session_id, "failed", "bot_error"), entry
            assert await asyncio.to_thread(listed, url, "--status", "ended") == []
            assert (await api.get(f"/sessions/{session_id}")).json()["status"] == "failed"
