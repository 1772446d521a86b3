"""The smoke gate with real processes: a `python -m dispatcher` whose stack-shaped `RELEASES` lists a
broken release (its `bot()` raises), the stable parrot and a new parrot entering at a 50 % canary;
callers on WebRTC (aiortc). A release takes no drawn start until its smoke session's caller heard
its bot, then its canary share; a broken one fails its smoke with the bot's own error and takes none."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dispatcher.api.auth import caller_of
from dispatcher.releases.choice import DrawKey, drawn
from dispatcher.releases.traffic import Traffic
from dispatcher.sessions.ids import new_session_id
from dispatcher.settings import hash_api_key
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.releases import listed_releases, smoke_env
from tests.support.waiting import wait_until
from tests.support.webrtc_client import OfferRejected, WebRTCClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # a real dispatcher and real bot processes importing Pipecat

ADMIN_KEY, CLIENT_KEY = "smoke-admin-key-0123456789", "smoke-client-key-0123456789"
ADMIN, CLIENT = {"Authorization": f"Bearer {ADMIN_KEY}"}, {"Authorization": f"Bearer {CLIENT_KEY}"}
WAIT = 240.0  # a bot's first import of Pipecat on a busy machine: a safety net, never what is checked
CANARY = 50
# The deployment's secret: the draw is keyed with it, so only a test that holds it can tell a start's release ahead.
TOKEN = "smoke-deployment-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    env = {**smoke_env(CANARY, CLIENT_KEY, ADMIN_KEY), "BOT_CHANNEL_TOKEN": TOKEN}
    with run_dispatcher(tmp_path_factory.mktemp("smoke"), env) as running:
        yield running


def releases(d: DispatcherProcess) -> dict[str, dict[str, Any]]:
    return listed_releases(d.base_url, ADMIN_KEY)


def drawing(release: str, taken: set[str]) -> str:
    """An Idempotency-Key whose start the client key's draw at the canary's weights gives `release`
    (the dispatcher's own draw: choice.py), so a start shows whether the canary's share is in force."""
    owner = caller_of(hash_api_key(CLIENT_KEY)).owner_key
    weights = Traffic({"stable": 100 - CANARY, "next": CANARY, "broken": 0}, "stable", (1, ""))
    for n in range(1000):
        key = f"draw-{release}-{n}"
        if key not in taken and drawn(weights, new_session_id(owner, key), DrawKey(TOKEN.encode())) == release:
            taken.add(key)
            return key
    raise AssertionError("no key draws it")


async def _start(api: httpx.AsyncClient, key: str) -> str:
    started = await api.post("/start", json={}, headers={**CLIENT, "Idempotency-Key": key})
    assert started.status_code == 201, started.text
    await api.delete(f"/sessions/{started.json()['session_id']}", headers=CLIENT)
    return str(started.json()["release"])


async def _smoke_call(api: httpx.AsyncClient, name: str) -> dict[str, Any]:
    """What `voicefleet releases smoke` does: start the smoke session, connect as its caller, listen."""
    started = await api.post(f"/releases/{name}/smoke", headers=ADMIN)
    assert started.status_code == 201, started.text
    answer: dict[str, Any] = started.json()
    try:
        async with WebRTCClient(f"{api.base_url}{answer['offer_url']}", headers=ADMIN,
                                ice_config=answer.get("iceConfig")) as client:
            for _ in range(int(WAIT / 0.2)):
                if client.result().connect_to_first_audio is not None or await status(api, name) != "running":
                    break
                await asyncio.sleep(0.2)
    except (TimeoutError, OfferRejected, OSError):
        pass  # a broken release's bot fails as the caller connects
    return answer


async def status(api: httpx.AsyncClient, name: str) -> str:
    """The release's smoke status."""
    got = (await api.get("/releases", headers=ADMIN)).json()["releases"]
    return str(next(r for r in got if r["name"] == name)["smoke"]["status"])


async def test_a_new_release_takes_no_drawn_start_until_its_smoke_session_is_heard_then_its_canary_share(
        dispatcher: DispatcherProcess) -> None:
    keys: set[str] = set()
    before = releases(dispatcher)["next"]
    assert before["smoke"] == {"status": "pending", "session_id": None, "reason": "", "at": None}
    assert before["weight"] == 0
    async with api_client(base_url=dispatcher.base_url, timeout=WAIT) as api:
        assert await _start(api, drawing("next", keys)) == "stable"  # its canary share waits
        answer = await _smoke_call(api, "next")
        wait_until(lambda: releases(dispatcher)["next"]["smoke"]["status"] != "running", "the smoke verdict",
                   timeout=WAIT, detail=dispatcher.log)
        after = releases(dispatcher)
        assert after["next"]["smoke"]["status"] == "passed", (after["next"], dispatcher.log()[-3000:])
        assert after["next"]["smoke"]["session_id"] == answer["session_id"]
        assert (after["next"]["weight"], after["stable"]["weight"]) == (CANARY, 100 - CANARY)
        assert await _start(api, drawing("next", keys)) == "next"
        again = await api.post("/releases/next/smoke", headers=ADMIN)
        history = (await api.get("/releases/history", headers=ADMIN)).json()["changes"]
        timeline = (await api.get(f"/sessions/{answer['session_id']}/timeline", headers=ADMIN)).json()["events"]
        foreign = await api.get(f"/sessions/{answer['session_id']}", headers=CLIENT)
    kinds = [e["event"] for e in timeline]
    assert kinds.index("joined") < kinds.index("first_audio"), kinds  # the machine's own reports decided
    assert foreign.status_code == 404  # the admin key's session: no client key names it
    assert answer["smoke"] is True and answer["release"] == "next" and answer["sessionId"] == answer["session_id"]
    assert again.status_code == 409 and again.json()["error"]["code"] == "smoke_already_passed"
    assert any(c["reason"] == f"next: smoke session passed; {CANARY}% of the traffic" and c["by"] == "smoke session"
               for c in history), history
    assert f"release next passed its smoke session {answer['session_id']}" in dispatcher.log()


async def test_a_release_whose_bot_raises_fails_its_smoke_with_that_error_and_takes_no_traffic(
        dispatcher: DispatcherProcess) -> None:
    async with api_client(base_url=dispatcher.base_url, timeout=WAIT) as api:
        answer = await _smoke_call(api, "broken")
        wait_until(lambda: releases(dispatcher)["broken"]["smoke"]["status"] == "failed", "the smoke verdict",
                   timeout=WAIT, detail=dispatcher.log)
        refused = await api.put("/releases/broken", json={"weight": 10}, headers=ADMIN)
    smoke = releases(dispatcher)["broken"]
    assert smoke["weight"] == 0 and smoke["smoke"]["session_id"] == answer["session_id"]
    assert "fails on purpose" in smoke["smoke"]["reason"], smoke
    assert refused.status_code == 409 and "fails on purpose" in refused.json()["error"]["message"]
    assert "release broken failed its smoke session" in dispatcher.log()


async def test_a_weight_on_a_release_not_smoke_tested_is_refused_naming_the_way_out(
        dispatcher: DispatcherProcess) -> None:
    before = releases(dispatcher)
    async with api_client(base_url=dispatcher.base_url, timeout=WAIT) as api:
        one = await api.put("/releases/broken", json={"weight": 10}, headers=ADMIN)
        every = await api.put("/releases", json={"weights": {"stable": 90, "broken": 10}}, headers=ADMIN)
        promoted = await api.post("/releases/broken/promote", headers=ADMIN)
    for refused in (one, every, promoted):
        assert refused.status_code == 409, refused.text
        error = refused.json()["error"]
        assert error["code"] == "release_not_smoke_tested"
        assert "voicefleet releases smoke broken" in error["message"] and "POST /releases/broken/smoke" in error[
            "message"]
    after = releases(dispatcher)
    assert {n: r["weight"] for n, r in after.items()} == {n: r["weight"] for n, r in before.items()}


async def test_a_client_key_cannot_start_a_smoke_session(dispatcher: DispatcherProcess) -> None:
    async with api_client(base_url=dispatcher.base_url, timeout=WAIT) as api:
        refused = await api.post("/releases/broken/smoke", headers=CLIENT)
        keyless = await api.post("/releases/broken/smoke")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_key_required"
    assert keyless.status_code == 401
