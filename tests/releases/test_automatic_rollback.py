"""Automatic rollback with real processes: a dispatcher with two releases of real bot files, a canary
whose `bot()` raises, callers on WebRTC. The canary is set to 0 once the rule has its sample; the
stable release keeps everything, and a session of it is untouched."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from tests.support.http_client import api_client
from tests.support.processes import run_dispatcher
from tests.support.releases import canary_weight, drawn_start, rollback_env, session_over
from tests.support.waiting import wait_until
from tests.support.webrtc_client import OfferRejected, WebRTCClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # a real dispatcher and real bot processes importing Pipecat

BOTS = Path(__file__).resolve().parents[1] / "bots"
# RELEASE_HEALTH_MIN_CANARY and _MIN_STABLE here: 6 of 6 failed against 0 of 6 is 99.96 % sure to be
# 3 points worse, past the rule's 99.9 % (4 of 4 against 0 of 4 is 99.5 %: no breach).
SAMPLE = 6


async def _call(api: httpx.AsyncClient, session_id: str) -> None:
    """A caller who connects over WebRTC (the canary's bot() runs, and raises)."""
    try:
        async with WebRTCClient(f"{api.base_url}/sessions/{session_id}/api/offer") as client:
            await client.result()
    except (TimeoutError, OfferRejected, OSError):
        pass  # the bot failed as the peer connected: what the caller of a broken release gets


async def test_a_canary_whose_bot_raises_is_rolled_back_within_its_sample_and_stable_is_untouched(
        tmp_path: Path) -> None:
    env = {
        **rollback_env(BOTS / "greeter.py", BOTS / "broken_raises.py"),
        "RELEASE_HEALTH_MIN_CANARY": str(SAMPLE), "RELEASE_HEALTH_MIN_STABLE": str(SAMPLE),
        # A stable session nobody joins ends after this, no fault of its bot, and not "within 5 s".
        "BOT_CONNECT_TIMEOUT_SECONDS": "6",
    }
    with run_dispatcher(tmp_path, env) as dispatcher:
        async with api_client(base_url=dispatcher.base_url, timeout=60) as api:
            drawn: dict[str, list[str]] = {"stable": [], "next": []}
            calls: list[asyncio.Task[None]] = []
            n = 0
            # The stable release's sample first (its callers never connect: no fault of the bot's), beside
            # whatever canary sessions the draw gives, whose callers connect and meet the bot raising.
            while len(drawn["stable"]) < SAMPLE:
                session_id, release = await drawn_start(api, n := n + 1)
                drawn[release].append(session_id)
                if release == "next":
                    calls.append(asyncio.create_task(_call(api, session_id)))
            await asyncio.gather(*calls, *(session_over(api, s) for s in drawn["stable"]))
            # Then canary sessions, judged now that the stable release has its sample, until the rule has its own
            # (or none, when the canary's calls beside the stable's held it: rolled back as the stable's completed).
            calls = []
            while (len(drawn["next"]) <= SAMPLE or not calls) and canary_weight(dispatcher.base_url) > 0:
                session_id, release = await drawn_start(api, n := n + 1)
                drawn[release].append(session_id)
                if release == "next":
                    calls.append(asyncio.create_task(_call(api, session_id)))
            await asyncio.gather(*calls)
            await asyncio.gather(*(session_over(api, s) for s in drawn["next"]))
            wait_until(lambda: canary_weight(dispatcher.base_url) == 0, "the canary's automatic rollback", timeout=30,
                       detail=dispatcher.log)
            releases = (await api.get("/releases")).json()
            history = (await api.get("/releases/history")).json()["changes"]
    by_name = {r["name"]: r for r in releases["releases"]}
    assert by_name["stable"]["weight"] == 100 and by_name["next"]["weight"] == 0
    assert by_name["next"]["health"]["state"] == "breached"
    assert re.search(r"(\d+) of \1 sessions failed", by_name["next"]["health"]["reason"]), by_name["next"]["health"]
    assert history[0]["by"] == "automatic rollback" and history[0]["to"] == {"stable": 100, "next": 0}
    assert by_name["stable"]["health"]["state"] == "healthy"
    assert "rolled back automatically" in dispatcher.log()
