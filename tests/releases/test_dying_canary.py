"""A canary whose machines die before their bot reports (its bot file gone since the dispatcher
started) is rolled back by the automatic rollback like one whose bot raises: a real dispatcher with it
as the canary beside the stable release, real bot processes, the stable release's sessions real too.
The canary's sessions are never read by the test before its rollback (a read of a session is one of
the ways the dispatcher sees its machine's end): the provider's own word on the process's exit is what
has them judged.

One real rollback is all this file runs. A canary whose bot crashes at boot, its sessions never read
either, is rolled back the same way from its processes' exits on two real replicas
(tests/replicas/test_release_rollback.py); each canary judged against the stable release alone, with
several canaries at once, in tests/releases/test_callers_own_stops.py."""

from __future__ import annotations

import asyncio
import base64
import shutil
from pathlib import Path
from typing import Any

import httpx
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
CANARIES = ("gone",)


async def _out(api: httpx.AsyncClient, canary: str) -> bool:
    listed = (await api.get("/releases")).json()["releases"]
    return bool(next(r["weight"] for r in listed if r["name"] == canary) == 0)


async def test_a_canary_whose_bot_file_is_gone_is_rolled_back(tmp_path: Path) -> None:
    gone = tmp_path / "gone" / "bot.py"
    gone.parent.mkdir()
    shutil.copy(BOTS / "greeter.py", gone)
    hooks: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        hooks.append(await request.json())
        return web.Response(status=204)

    async with hook_receiver(hook) as url:
        env = {**rollback_env(BOTS / "greeter.py", BOTS / "crash_at_boot.py"),
               "BOT_RELEASES": f"stable={BOTS / 'greeter.py'},gone={gone}", "RELEASE_WEIGHTS": "stable=50,gone=50",
               "RELEASE_HEALTH_MIN_CANARY": str(SAMPLE), "RELEASE_HEALTH_MIN_STABLE": str(SAMPLE),
               "BOT_CONNECT_TIMEOUT_SECONDS": "6", "WEBHOOK_URL": url, "WEBHOOK_SECRET": SECRET}
        with run_dispatcher(tmp_path, env) as dispatcher:
            gone.unlink()  # the release was fine when configured; its file is gone since
            async with api_client(base_url=dispatcher.base_url, timeout=60) as api:
                drawn: dict[str, list[str]] = {"stable": [], **{canary: [] for canary in CANARIES}}
                n = 0
                while len(drawn["stable"]) < SAMPLE:  # the stable release's sample first
                    session_id, release = await drawn_start(api, n := n + 1)
                    drawn[release].append(session_id)
                await asyncio.gather(*(session_over(api, s) for s in drawn["stable"]))
                # A canary's sessions drawn beside the stable's may hold its sample already: then it is
                # rolled back as the stable's sample completes, and no start is drawn to it any more.
                first = {canary: len(drawn[canary]) for canary in CANARIES}

                async def judging(canary: str) -> bool:
                    return (len(drawn[canary]) <= SAMPLE or len(drawn[canary]) == first[canary]) and not await _out(
                        api, canary)

                while any([await judging(canary) for canary in CANARIES]):
                    session_id, release = await drawn_start(api, n := n + 1)
                    drawn[release].append(session_id)

                async def both_out() -> bool:
                    return all([await _out(api, canary) for canary in CANARIES])

                await until(both_out, "the canary's automatic rollback", timeout=120)
                rolled: dict[str, dict[str, Any]] = {}

                def both_hooks() -> bool:
                    rolled.update({h["data"]["release"]: h for h in hooks if h.get("type") == "release.rolled_back"})
                    return set(rolled) == set(CANARIES)

                await until(both_hooks, "its release.rolled_back webhook", timeout=60)
                by_name = {r["name"]: r for r in (await api.get("/releases")).json()["releases"]}
                history = (await api.get("/releases/history")).json()["changes"]
                sessions = {c: (await api.get(f"/sessions/{drawn[c][0]}")).json() for c in CANARIES}
                timelines = {c: (await api.get(f"/sessions/{drawn[c][0]}/timeline")).json() for c in CANARIES}
    assert by_name["stable"]["weight"] == 100 and by_name["stable"]["health"]["state"] == "healthy", by_name
    for canary in CANARIES:
        assert by_name[canary]["weight"] == 0 and by_name[canary]["health"]["state"] == "breached", by_name[canary]
        assert "failed to start" in by_name[canary]["health"]["reason"], by_name[canary]["health"]
        assert rolled[canary]["data"]["stable"] == "stable", rolled[canary]
        assert sessions[canary]["status"] == "failed", sessions[canary]
        ended = [e["state"] for e in timelines[canary]["events"] if e["event"] == "machine_ended"]
        assert ended == ["failed"], timelines[canary]
    assert history[0]["by"] == "automatic rollback", history
    assert history[0]["to"] == {"stable": 100, "gone": 0}, history
    assert "no such file" in (sessions["gone"].get("detail") or ""), sessions["gone"]
