"""A canary whose machines die before their bot reports (a crash at boot, a bot file gone) is rolled
back by the automatic rollback like one whose bot raises: a real dispatcher, real bot processes, the
stable release's sessions real too. The canary's sessions are never read by the test (a read of a
session is one of the ways the dispatcher sees its machine's end): the provider's own word on the
process's exit is what has them judged."""

from __future__ import annotations

import asyncio
import base64
import shutil
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.support.hook_receiver import hook_receiver
from tests.support.http_client import api_client
from tests.support.processes import run_dispatcher
from tests.support.releases import drawn_start, rollback_env, session_over
from tests.support.waiting import until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # a real dispatcher and real bot processes importing Pipecat

BOTS = Path(__file__).resolve().parents[1] / "bots"
SAMPLE = 6  # RELEASE_HEALTH_MIN_CANARY and _MIN_STABLE: 6 of 6 failed against 0 of 6 breaches (as in
# test_automatic_rollback.py)
SECRET = "whsec_" + base64.b64encode(b"dying-canary-webhook-secret-32by").decode()


Seen = tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any], dict[str, Any], dict[str, Any]]


async def _rolled_back(tmp_path: Path, canary_bot: Path, *, gone: bool = False) -> Seen:
    """Drawn starts until the canary `next` has its sample (the stable release's sessions end on their
    own, no fault of their bot's); then what the dispatcher says once the canary is at 0."""
    hooks: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        hooks.append(await request.json())
        return web.Response(status=204)

    async with hook_receiver(hook) as url:
        env = {**rollback_env(BOTS / "greeter.py", canary_bot),
               "RELEASE_HEALTH_MIN_CANARY": str(SAMPLE), "RELEASE_HEALTH_MIN_STABLE": str(SAMPLE),
               "BOT_CONNECT_TIMEOUT_SECONDS": "6", "WEBHOOK_URL": url, "WEBHOOK_SECRET": SECRET}
        with run_dispatcher(tmp_path, env) as dispatcher:
            if gone:  # the release was fine when configured; its file is gone since
                canary_bot.unlink()
            async with api_client(base_url=dispatcher.base_url, timeout=60) as api:
                drawn: dict[str, list[str]] = {"stable": [], "next": []}
                n = 0
                while len(drawn["stable"]) < SAMPLE:  # the stable release's sample first
                    session_id, release = await drawn_start(api, n := n + 1)
                    drawn[release].append(session_id)

                async def canary_out() -> bool:
                    listed = (await api.get("/releases")).json()["releases"]
                    return bool(next(r["weight"] for r in listed if r["name"] == "next") == 0)

                await asyncio.gather(*(session_over(api, s) for s in drawn["stable"]))
                # The canary's sessions drawn beside the stable's may hold its sample already: then it is
                # rolled back as the stable's sample completes, and no start is drawn to it any more.
                first_canary = len(drawn["next"])
                while (len(drawn["next"]) <= SAMPLE or len(drawn["next"]) == first_canary) and not await canary_out():
                    session_id, release = await drawn_start(api, n := n + 1)
                    drawn[release].append(session_id)

                await until(canary_out, "the canary's automatic rollback", timeout=120)
                await until(lambda: any(h.get("type") == "release.rolled_back" for h in hooks),
                            "the release.rolled_back webhook", timeout=60)
                releases = (await api.get("/releases")).json()
                history = (await api.get("/releases/history")).json()["changes"]
                one = drawn["next"][0]
                session = (await api.get(f"/sessions/{one}")).json()
                timeline = (await api.get(f"/sessions/{one}/timeline")).json()
    by_name = {r["name"]: r for r in releases["releases"]}
    rolled = next(h for h in hooks if h.get("type") == "release.rolled_back")
    return by_name, history, rolled, session, timeline


def _events(timeline: dict[str, Any]) -> list[dict[str, Any]]:
    return list(timeline["events"])


async def test_a_canary_whose_bot_crashes_at_boot_is_rolled_back(tmp_path: Path) -> None:
    by_name, history, rolled, session, timeline = await _rolled_back(tmp_path, BOTS / "crash_at_boot.py")
    assert by_name["stable"]["weight"] == 100 and by_name["next"]["weight"] == 0
    assert by_name["next"]["health"]["state"] == "breached"
    assert "failed to start" in by_name["next"]["health"]["reason"], by_name["next"]["health"]
    assert history[0]["by"] == "automatic rollback" and history[0]["to"] == {"stable": 100, "next": 0}
    assert rolled["data"]["release"] == "next" and rolled["data"]["stable"] == "stable"
    assert session["status"] == "failed"
    ended = [e for e in _events(timeline) if e["event"] == "machine_ended"]
    assert len(ended) == 1 and ended[0]["state"] == "failed", _events(timeline)


async def test_a_canary_whose_bot_file_is_gone_is_rolled_back(tmp_path: Path) -> None:
    canary = tmp_path / "next" / "bot.py"
    canary.parent.mkdir()
    shutil.copy(BOTS / "greeter.py", canary)
    by_name, history, rolled, session, timeline = await _rolled_back(tmp_path, canary, gone=True)
    assert by_name["next"]["weight"] == 0 and by_name["next"]["health"]["state"] == "breached"
    assert history[0]["by"] == "automatic rollback"
    assert rolled["data"]["release"] == "next"
    assert session["status"] == "failed" and "no such file" in (session.get("detail") or ""), session
    assert [e["state"] for e in _events(timeline) if e["event"] == "machine_ended"] == ["failed"]
