"""Finding: MAX_CONCURRENT_SESSIONS is the deployment's, and a key's only bound was its start rate,
so one key filled every slot in one burst (and drained the warm reserve doing it) and every other
key got `429 at_capacity` for as long as its sessions ran (up to MAX_SESSION_SECONDS). Now a key
may hold `KEY_SESSION_SHARE` of the cap and claim `KEY_WARM_SHARE` of the reserve a minute while
other keys share the deployment, counted for the whole deployment through the store.

Real `python -m dispatcher` replicas (local stand-in bots) on a real redis-server as the AWS
stack's store user (tests/support/redis_server.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dispatcher.api.auth import Authenticator
from dispatcher.sessions.key_share import RECHECK_SECONDS
from dispatcher.settings import Settings, hash_api_key
from tests.replicas.conftest import start_fleet
from tests.security.conftest import MakeDispatcher
from tests.support.redis_server import RedisServer, redis_server
from tests.support.session_api import METRICS_ADMIN, METRICS_AUTH
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # two dispatchers, a redis-server and their bots

KEY_A, KEY_B = "share-key-a-0123456789abcdef", "share-key-b-0123456789abcdef"
A, B = {"Authorization": f"Bearer {KEY_A}"}, {"Authorization": f"Bearer {KEY_B}"}
CAP = 4  # MAX_CONCURRENT_SESSIONS; each key's share is half of it by default


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


def start(base: str, auth: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{base}/start", json={}, headers=auth, timeout=60)


def test_one_key_holds_its_share_of_sessions_across_replicas_and_others_find_room(
    tmp_path: Path, store: RedisServer
) -> None:
    with start_fleet(tmp_path, store, 2, DISPATCHER_API_KEYS=f"{KEY_A},{KEY_B}",
                     MAX_CONCURRENT_SESSIONS=str(CAP), RESERVE_MAX_IDLE="0") as fleet:
        first, second = (r.base_url for r in fleet.replicas)
        # Key A's burst, alternating between the replicas: its share is the deployment's, not each one's.
        answers = [start(base, A) for base in (first, second, first, second)]
        assert [a.status_code for a in answers] == [201, 201, 429, 429], [a.text for a in answers]
        refused = answers[2]
        assert refused.json()["error"]["code"] == "key_at_capacity", refused.text
        # A refusal at admission is no session: no timeline (a day in the store) and no webhook.
        assert "session_id" not in refused.json()["error"], refused.text
        assert len(settled_timelines(store, 2)) == 2
        assert "0.5 of MAX_CONCURRENT_SESSIONS 4" in refused.json()["error"]["message"]
        assert float(refused.headers["Retry-After"]) > 0
        # Another key finds the room key A could not take.
        other = start(second, B)
        assert other.status_code == 201, other.text
        # Key A's stop gives its share back at once, whichever replica it reaches.
        held = answers[0].json()["session_id"]
        assert httpx.delete(f"{second}/sessions/{held}", headers=A, timeout=30).status_code in (202, 204)
        again = start(first, A)
        assert again.status_code == 201, again.text


def settled_timelines(store: RedisServer, started: int) -> list[str]:
    """The store's session timelines, once the `started` sessions' own have landed: the replicas
    write them from a background task (dispatcher/sessions/timeline.py), late on a busy machine."""

    def timelines() -> list[str]:
        with store.admin() as admin:
            return sorted(admin.scan_iter(match="{voicefleet}:timeline:*"))

    wait_until(lambda: len(timelines()) >= started, f"the {started} started sessions' timelines")
    time.sleep(1.0)  # and a while longer, in which a refused start's would land if one were written
    return timelines()


def test_a_key_alone_may_use_every_slot(tmp_path: Path, store: RedisServer) -> None:
    with start_fleet(tmp_path, store, 1, DISPATCHER_API_KEYS=KEY_A, MAX_CONCURRENT_SESSIONS=str(CAP),
                     RESERVE_MAX_IDLE="0") as fleet:
        answers = [start(fleet.replicas[0].base_url, A) for _ in range(CAP + 3)]
        timelines = settled_timelines(store, CAP)
    assert [a.status_code for a in answers] == [201] * CAP + [429] * 3, [a.text for a in answers]
    assert answers[-1].json()["error"]["code"] == "at_capacity"  # the deployment's cap, not a share
    assert len(timelines) == CAP, timelines  # the refused starts left nothing in the store


def idle_bots(base: str) -> float:
    text = httpx.get(f"{base}/metrics", headers=METRICS_AUTH, timeout=30).text
    line = 'voicefleet_reserve_bots{provider="local",state="idle"}'
    return sum(float(row.rsplit(" ", 1)[1]) for row in text.splitlines() if row.startswith(line))


def launch_of(base: str, auth: dict[str, str], session_id: str) -> str:
    """`claimed` (a warm bot) or `launched` (cold), from the session's timeline."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        events = httpx.get(f"{base}/sessions/{session_id}/timeline", headers=auth, timeout=30).json()["events"]
        found = [e["event"] for e in events if e["event"] in ("claimed", "launched")]
        if found:
            return str(found[0])
        time.sleep(0.1)
    raise AssertionError(f"session {session_id} has no launch in its timeline")


def test_one_key_claims_its_share_of_the_warm_reserve_and_the_rest_start_cold(
    tmp_path: Path, store: RedisServer
) -> None:
    with start_fleet(tmp_path, store, 1, DISPATCHER_API_KEYS=f"{KEY_A},{KEY_B}", MAX_CONCURRENT_SESSIONS="10",
                     RESERVE_MIN_IDLE="2", RESERVE_MAX_IDLE="2", RESERVE_BUFFER="0", RESERVE_BURST="0",
                     **METRICS_ADMIN) as fleet:
        base = fleet.replicas[0].base_url
        deadline = time.monotonic() + 90
        while idle_bots(base) < 2:
            assert time.monotonic() < deadline, "the reserve never held 2 idle bots"
            time.sleep(0.2)
        first, second = start(base, A), start(base, A)  # key A's share: 1 of the 2 idle bots a minute
        assert first.status_code == second.status_code == 201, (first.text, second.text)
        launches = [launch_of(base, A, a.json()["session_id"]) for a in (first, second)]
        other = start(base, B)
        assert other.status_code == 201, other.text
        other_launch = launch_of(base, B, other.json()["session_id"])
    assert launches == ["claimed", "launched"], launches
    assert other_launch == "claimed"  # the idle bot key A left


async def test_a_session_that_ends_on_its_own_stops_counting_for_its_key(make_dispatcher: MakeDispatcher) -> None:
    """Only a key's stop gives its share back at once; a session whose bot ended by itself is found
    ended at the provider when the key next reaches its share (at most every RECHECK_SECONDS)."""
    settings = Settings(api_key_hashes=frozenset({hash_api_key(KEY_A), hash_api_key(KEY_B)}),
                        max_concurrent_sessions=CAP)
    d = await make_dispatcher(settings)
    held = []
    for _ in range(CAP // 2):
        answer = await d.client.post("/start?wait=started", json={}, headers=A)
        assert answer.status_code == 201, answer.text
        held.append(answer.json()["session_id"])
    refused = await d.client.post("/start", json={}, headers=A)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "key_at_capacity", refused.text
    os.kill(d.session_pid(held[0]), signal.SIGTERM)  # its bot ends by itself: no stop through the API
    deadline = time.monotonic() + 30
    while (await d.client.get(f"/sessions/{held[0]}", headers=A)).json()["status"] not in ("ended", "failed"):
        assert time.monotonic() < deadline, "the bot never ended"
        await asyncio.sleep(0.1)
    await asyncio.sleep(RECHECK_SECONDS)  # the refusal above looked the key's sessions up just now
    again = await d.client.post("/start", json={}, headers=A)
    assert again.status_code == 201, again.text


async def test_a_stop_that_lands_before_its_session_launches_keeps_the_share_counted(
    make_dispatcher: MakeDispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An Idempotency-Key tells a key its session id in advance: a DELETE that lands while the
    start is between its share and its machine stops nothing, and must not give the share back
    (the launch goes on and the session runs)."""
    settings = Settings(api_key_hashes=frozenset({hash_api_key(KEY_A), hash_api_key(KEY_B)}),
                        max_concurrent_sessions=CAP)
    d = await make_dispatcher(settings)
    machines = d.state.machines
    launch, entered, go_on = machines.launch, asyncio.Event(), asyncio.Event()

    async def slow_provider(spec: Any) -> Any:  # the provider's own launch, answered late
        entered.set()
        await go_on.wait()
        return await launch(spec)

    monkeypatch.setattr(machines, "launch", slow_provider)
    owner_key = Authenticator(settings.api_key_hashes).identify(f"Bearer {KEY_A}").owner_key
    session_id = d.state.sessions.session_id_for(owner_key, "known-ahead")
    starting = asyncio.create_task(d.client.post("/start", json={}, headers={**A, "Idempotency-Key": "known-ahead"}))
    await asyncio.wait_for(entered.wait(), 30)
    stopped = await d.client.delete(f"/sessions/{session_id}", headers=A)
    assert stopped.status_code in (202, 204), stopped.text
    go_on.set()
    assert (await starting).status_code == 201
    answers = [await d.client.post("/start", json={}, headers=A) for _ in range(CAP // 2)]
    assert [a.status_code for a in answers] == [201, 429], [a.text for a in answers]
    assert answers[-1].json()["error"]["code"] == "key_at_capacity"
