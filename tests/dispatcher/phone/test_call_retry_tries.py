"""A keyed call's retry after a try that placed nothing (dispatcher/api/call_order.py `current_try`): the edge
answers the first hand-over `503 edge_full`, so the call's session ends `not_placed`; the retry with the same
Idempotency-Key runs as a new call, in a session of its own whose timeline holds no end (the first try's end,
read as this call's, had a campaign settle its row `not_placed` at once and the edge report the retry's
session ended before its bot joined). A try the edge may hold is never placed again. In this process's memory
and across two replicas on a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.phone.trunk_calls import TrunkInfo
from dispatcher.settings import Settings
from tests.dispatcher.phone.test_sip_edge_records import Scripted, answer
from tests.dispatcher.phone.test_trunk_calls import GOOD, SECRET, listed
from tests.support.redis_server import RedisServer, redis_server

EDGE = "http://127.0.0.1:9"  # never dialled: each app's client to it is `Scripted`
API_KEY = "vf_call_retry_tries_key_0123456789ab"  # the same key's sessions at every replica
HEADERS = {"Idempotency-Key": "order-9", "Authorization": f"Bearer {API_KEY}"}


def dispatcher(edge: Scripted, **env: str) -> Any:
    env = {"SIP_EDGE_URL": EDGE, "SIP_EDGE_SECRET": SECRET, "DISPATCHER_API_KEYS": f"dialer:{API_KEY}",
           "BOT_CHANNEL_TOKEN": "call-retry-tries-deployment-secret-0123", **env}
    app = create_app(Settings.from_env(env), env=env, machines=LocalMachines(LocalSettings()), rooms=None)
    calls = app.state.voicefleet.trunk_calls
    listed(calls, TrunkInfo("far", 50.0))
    calls.edges._clients = {EDGE: edge}
    return app


async def post(app: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as api:
        return await api.post("/calls", json=GOOD, headers=HEADERS)


async def ends(app: Any, session_id: str) -> list[str]:
    return [e["reason"] for e in await app.state.voicefleet.sessions.timeline.read(session_id)
            if e["event"] == "ended"]


def first_try(app: Any) -> str:
    """The session the key's first try ran in (its id follows from the key)."""
    state = app.state.voicefleet
    return str(state.sessions.session_id_for(state.auth.identify(f"Bearer {API_KEY}").owner_key, "call-order-9"))


async def test_a_try_no_edge_took_is_placed_again_by_its_retry_in_a_session_of_its_own() -> None:
    edge = Scripted([answer(503, "edge_full"), answer(202)])
    app = dispatcher(edge)
    try:
        full, placed, again = await post(app), await post(app), await post(app)
        assert full.status_code == 503 and full.json()["error"]["code"] == "sip_edge_unavailable", full.text
        assert placed.status_code == 201, placed.text
        session_id = placed.json()["session_id"]
        assert session_id != first_try(app)
        assert await ends(app, first_try(app)) == ["not_placed"]  # the first try ended once, with why
        assert await ends(app, session_id) == []  # the retry's own session: nothing ended it
        # The same key again follows the retry's call: nothing more is handed over.
        assert again.status_code == 409 and again.json()["error"]["session_id"] == session_id, again.text
        assert edge.asked == 2
    finally:
        await app.state.voicefleet.aclose()


async def test_a_try_the_edge_may_hold_is_refused_again_naming_its_ended_session_never_placed_again() -> None:
    """A 5xx from a proxy in front of the edge (Cloudflare's 524) does not prove the edge took nothing: the
    retry is not placed, nor answered 2xx (the session failed), but refused naming the ended session."""
    edge = Scripted([answer(524), answer(202)])
    app = dispatcher(edge)
    try:
        failed, again = await post(app), await post(app)
        assert failed.status_code == 502 and failed.json()["error"]["code"] == "sip_edge_failed", failed.text
        assert again.status_code == 409, again.text
        error = again.json()["error"]
        assert error["code"] == "call_not_placed" and error["session_id"] == first_try(app), error
        assert "new Idempotency-Key" in error["message"], error
        assert await ends(app, first_try(app)) == ["not_placed"]  # ended once, by the first try
        assert edge.asked == 1
    finally:
        await app.state.voicefleet.aclose()


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(Path(tmp_path_factory.mktemp("redis"))) as server:
        yield server


async def test_a_retry_at_another_replica_places_the_call_no_edge_took_in_a_session_of_its_own(
        redis: RedisServer) -> None:
    """Replica A's try is answered 503 full; the retry reaches B, then B and A again: one call, placed once."""
    a_edge, b_edge = Scripted([answer(503, "edge_full")]), Scripted([answer(202)])
    a = dispatcher(a_edge, **redis.env, REPLICA_ID="r-a")
    b = dispatcher(b_edge, **redis.env, REPLICA_ID="r-b")
    try:
        full, placed = await post(a), await post(b)
        assert full.status_code == 503 and placed.status_code == 201, (full.text, placed.text)
        session_id = placed.json()["session_id"]
        assert session_id != first_try(a)
        assert await ends(b, session_id) == []
        for replica in (b, a):
            again = await post(replica)
            assert again.status_code == 409 and again.json()["error"]["session_id"] == session_id, again.text
        assert (a_edge.asked, b_edge.asked) == (1, 1)
    finally:
        for app in (a, b):
            await app.state.voicefleet.aclose()
