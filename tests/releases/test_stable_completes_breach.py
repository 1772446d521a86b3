"""A canary's breach that the stable release's sample completes is acted on at once: a real
dispatcher, a canary `next` at 50 % whose machines exit at boot beside a stable greeter. The canary's
sessions all fail first, judged while the stable release has no sample; the stable's sessions end
after (tests/support/stable_last.py). No canary session ends after the stable sample is complete, yet
the canary is at 0 within 2 s of it, with its audit line, its log line and its webhook."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.support import stable_last
from tests.support.hook_receiver import hook_receiver
from tests.support.http_client import api_client
from tests.support.processes import run_dispatcher
from tests.support.releases import ADMIN, ADMIN_KEY, rollback_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # a real dispatcher and real bot processes importing Pipecat

BOTS = Path(__file__).resolve().parents[1] / "bots"
SAMPLE = 6  # RELEASE_HEALTH_MIN_CANARY and _MIN_STABLE: 6 of 6 failed against 0 of 6 breaches
ACTS_WITHIN = 2.0  # seconds from the stable's minimum sample to the canary's rollback
SECRET = "whsec_" + base64.b64encode(b"stable-completes-breach-secret32").decode()


async def test_a_breach_completed_by_the_stable_sample_rolls_the_canary_back_at_once(tmp_path: Path) -> None:
    hooks: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        hooks.append(await request.json())
        return web.Response(status=204)

    async with hook_receiver(hook) as url:
        env = {**rollback_env(BOTS / "greeter.py", BOTS / "crash_at_boot.py"), **stable_last.KEY_RELEASES,
               "DISPATCHER_ADMIN_KEYS": ADMIN_KEY,
               "RELEASE_HEALTH_MIN_CANARY": str(SAMPLE), "RELEASE_HEALTH_MIN_STABLE": str(SAMPLE),
               # A stable session nobody joins ends after this, no fault of its bot, and not "within 5 s".
               "BOT_CONNECT_TIMEOUT_SECONDS": "6", "WEBHOOK_URL": url, "WEBHOOK_SECRET": SECRET}
        with run_dispatcher(tmp_path, env) as dispatcher:
            async with (api_client(base_url=dispatcher.base_url, timeout=60,
                                   headers={"Authorization": f"Bearer {stable_last.TESTER_KEY}"}) as tester,
                        api_client(base_url=dispatcher.base_url, timeout=60,
                                   headers={"Authorization": f"Bearer {stable_last.CALLER_KEY}"}) as caller):
                polling = asyncio.create_task(stable_last.first_seen_at_zero(tester))
                reached = await stable_last.stable_after_canary(tester, caller, SAMPLE)
                seen = await stable_last.seen_at_zero(polling)
                for _ in range(100):  # sent by the outbox right after the rollback: a safety net
                    if any(h.get("type") == "release.rolled_back" for h in hooks):
                        break
                    await asyncio.sleep(0.1)
                history = (await tester.get("/releases/history", headers=ADMIN)).json()["changes"]
                log = dispatcher.log()
    rollback = history[0]
    assert rollback["by"] == "automatic rollback" and rollback["to"] == {"stable": 100, "next": 0}, history
    assert rollback["reason"].startswith(f"next: {SAMPLE} of {SAMPLE} sessions failed ({SAMPLE} failed to start)")
    assert rollback["at"] - reached <= ACTS_WITHIN, (rollback["at"] - reached, seen - reached)
    assert seen - reached <= ACTS_WITHIN, (rollback["at"] - reached, seen - reached)  # what GET /releases said
    assert [h["data"]["release"] for h in hooks if h.get("type") == "release.rolled_back"] == ["next"]
    assert log.count("rolled back automatically") == 1
