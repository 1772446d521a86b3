"""`POST /start` through the dispatcher app, for each cloud provider against its fake and the fake Daily.

The brief named one file per provider; one parametrized module says the same thing once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from dispatcher.api.auth import Authenticator
from dispatcher.app import create_app
from dispatcher.machines.base import Machines
from dispatcher.media.daily import DailyRooms, DailySettings
from dispatcher.sessions.ids import new_session_id
from dispatcher.settings import Settings, hash_api_key
from tests.dispatcher.machines.harness import Harness
from tests.fakes.daily import FakeDaily
from tests.fakes.k8s_sandbox import FakeAgentSandbox
from tests.fakes.server import Hold

KEY = "dispatch-test-key-0123456789"
# These deployments have no bot channel, so their bots get the room and token at launch. An agent-sandbox
# pool's bot gets nothing at launch (its claim and pod are readable by whoever may `get` them): it takes
# them over the channel (test_cold_session_secrets.py), which the mode requires.
NO_LAUNCH_VALUES = "the agent-sandbox mode hands its bots nothing at launch: it needs the channel"
AUTH = {"Authorization": f"Bearer {KEY}"}
# What the session service alone decides (tokens, rooms, Daily's presence, its clean-ups, its close), the
# same whichever provider launched the machine (the answer to a conflict, a refusal, a throttling): on two
# providers, each a different API. What each provider does (its launch values, idempotency, body digest,
# stop, refusals, throttling, states) stays on all of them: in test_contract.py, and here where the answer
# depends on it (launch values, a replay, a delete, a failed room's machine, a start stopped half-way).
SERVICE_ONLY = pytest.mark.parametrize("harness", ["fly", "gce"], indirect=True)


@dataclass
class Dispatcher:
    http: httpx.AsyncClient
    machines: Machines
    rooms: DailyRooms


@pytest.fixture
async def dispatcher(harness: Harness, fake_daily: FakeDaily) -> AsyncIterator[Dispatcher]:
    settings = Settings(
        machines=harness.name,
        api_key_hashes=frozenset({hash_api_key(KEY)}),
        max_session_seconds=600,
        max_concurrent_sessions=100_000,  # the shared moto server holds other tests' tasks
    )
    machines = harness.make()
    rooms = DailyRooms(DailySettings.from_env(fake_daily.env))
    app = create_app(settings, env={}, machines=machines, rooms=rooms)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")
    yield Dispatcher(http, machines, rooms)
    await http.aclose()
    await app.state.voicefleet.aclose()


async def test_start_launches_the_bot_with_its_room_and_token(
    dispatcher: Dispatcher,
    harness: Harness,
    fake_daily: FakeDaily,
) -> None:
    if harness.identity_only:
        pytest.skip(NO_LAUNCH_VALUES)
    response = await dispatcher.http.post("/start", json={"body": {"persona": "x"}}, headers=AUTH)
    assert response.status_code == 201
    session = response.json()
    [received] = harness.received(session["session_id"])
    assert received["room_url"] == session["room_url"] == f"https://voicefleet-test.daily.co/vf-{session['session_id']}"
    assert fake_daily.verify_token(received["token"])["r"] == f"vf-{session['session_id']}"
    assert f"vf-{session['session_id']}" in fake_daily.rooms


@SERVICE_ONLY
async def test_the_caller_gets_a_non_owner_token_not_the_bots(
    dispatcher: Dispatcher,
    harness: Harness,
    fake_daily: FakeDaily,
) -> None:
    if harness.identity_only:
        pytest.skip(NO_LAUNCH_VALUES)
    session = (await dispatcher.http.post("/start", json={}, headers=AUTH)).json()
    [received] = harness.received(session["session_id"])
    assert session["token"] != received["token"]
    assert fake_daily.verify_token(session["token"])["o"] is False


async def test_a_replayed_start_launches_one_machine(
    dispatcher: Dispatcher, harness: Harness, fake_daily: FakeDaily
) -> None:
    headers = {**AUTH, "Idempotency-Key": "call-7"}
    first = await dispatcher.http.post("/start", json={"body": {"a": 1}}, headers=headers)
    again = await dispatcher.http.post("/start", json={"body": {"a": 1}}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert len(harness.received(first.json()["session_id"])) == 1
    # The replay is as usable as the first answer: the same room, and a caller's token for it.
    assert again.json()["room_url"] == first.json()["room_url"]
    claims = fake_daily.verify_token(again.json()["token"])
    assert (claims["r"], claims["ud"], claims["o"]) == (f"vf-{first.json()['session_id']}",
                                                        f"user-{first.json()['session_id']}", False)


@SERVICE_ONLY
async def test_a_failing_presence_check_still_answers_the_session(
    dispatcher: Dispatcher, harness: Harness, fake_daily: FakeDaily
) -> None:
    session_id = (await dispatcher.http.post("/start", json={}, headers=AUTH)).json()["session_id"]
    await harness.move(session_id, "started")
    fake_daily.fail(500, times=1000, path_contains="/presence")
    got = await dispatcher.http.get(f"/sessions/{session_id}", headers=AUTH)
    assert got.status_code == 200 and got.json()["status"] == "started"  # not joined, not an error
    fake_daily.knobs.failures.clear()


# The service compares the digests; each provider's recording of its machine's digest:
# test_contract.py::test_body_digest_is_recorded_on_the_machine.
@SERVICE_ONLY
async def test_a_reused_key_with_another_body_is_a_conflict(dispatcher: Dispatcher) -> None:
    headers = {**AUTH, "Idempotency-Key": "call-8"}
    await dispatcher.http.post("/start", json={"body": {"a": 1}}, headers=headers)
    response = await dispatcher.http.post("/start", json={"body": {"a": 2}}, headers=headers)
    assert response.status_code == 409


async def test_delete_stops_the_machine_ends_the_room_and_a_second_delete_is_harmless(
    dispatcher: Dispatcher,
    harness: Harness,
    fake_daily: FakeDaily,
) -> None:
    if harness.name == "fly":
        harness.fake.destroyed_ttl = 0  # as strict as Fly gets: a destroyed machine is gone at once
    session_id = (await dispatcher.http.post("/start", json={}, headers=AUTH)).json()["session_id"]
    await harness.move(session_id, "started")
    first = await dispatcher.http.delete(f"/sessions/{session_id}", headers=AUTH)
    # Each provider reports the stopped machine as ended at once (a stopping ECS task, a VM
    # being deleted, a destroyed Fly machine): 204. (202, a machine still running after its
    # stop: tests/dispatcher/api/test_delete_status.py.)
    assert first.status_code == 204, first.text
    assert harness.live(session_id) == 0
    assert f"vf-{session_id}" not in fake_daily.rooms  # the room ends with its bot
    again = await dispatcher.http.delete(f"/sessions/{session_id}", headers=AUTH)
    assert again.status_code == 204, again.text


# The room's clean-up is the service's; each provider's refusal (`_rejected`, no retry):
# test_contract.py::test_permanent_launch_failure_is_reported_without_retry.
@SERVICE_ONLY
async def test_a_refused_launch_leaves_no_room_behind(
    dispatcher: Dispatcher,
    harness: Harness,
    fake_daily: FakeDaily,
) -> None:
    harness.reject()
    response = await dispatcher.http.post("/start", json={}, headers=AUTH)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == f"{harness.name}_rejected"
    assert await fake_daily.eventually(lambda: fake_daily.rooms == {})  # ended in the background


async def test_a_failed_room_leaves_no_machine_running(
    dispatcher: Dispatcher,
    harness: Harness,
    fake_daily: FakeDaily,
) -> None:
    await dispatcher.rooms.grant("0" * 24, 60)  # domain config cached: the failure hits the room only
    before = harness.launched()  # moto is shared by the tests
    fake_daily.fail(400, method="POST", path_contains="/rooms", body={"error": "invalid-request-error", "info": "no"})
    response = await dispatcher.http.post("/start", json={}, headers={**AUTH, "Idempotency-Key": "k"})
    assert response.status_code == 502
    [sid] = harness.launched() - before
    machine = await dispatcher.machines.status(sid)
    assert machine is None or not machine.state.is_active


# The 503 and its header are the service's; each provider's `_throttled` with its retry hint:
# test_contract.py::test_persistent_throttling_is_reported_with_a_retry_hint.
@SERVICE_ONLY
async def test_persistent_throttling_answers_503_with_retry_after(dispatcher: Dispatcher, harness: Harness) -> None:
    harness.throttle(1000)
    response = await dispatcher.http.post("/start", json={}, headers=AUTH)
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1


@SERVICE_ONLY
async def test_session_is_joined_once_the_bot_is_in_the_room(
    dispatcher: Dispatcher,
    harness: Harness,
    fake_daily: FakeDaily,
) -> None:
    sid = (await dispatcher.http.post("/start", json={}, headers=AUTH)).json()["session_id"]
    await harness.move(sid, "started")
    assert (await dispatcher.http.get(f"/sessions/{sid}", headers=AUTH)).json()["status"] == "started"
    fake_daily.join(f"vf-{sid}", f"bot-{sid}")
    assert (await dispatcher.http.get(f"/sessions/{sid}", headers=AUTH)).json()["status"] == "joined"


@SERVICE_ONLY
async def test_get_shows_the_room_but_never_a_token(dispatcher: Dispatcher, harness: Harness) -> None:
    started = (await dispatcher.http.post("/start", json={}, headers=AUTH)).json()
    got = (await dispatcher.http.get(f"/sessions/{started['session_id']}", headers=AUTH)).json()
    assert got["room_url"] == started["room_url"]
    assert "token" not in got and started["token"] not in str(got)


async def test_a_start_stopped_half_way_asks_for_a_new_key_and_a_retry_launches_nothing(
    dispatcher: Dispatcher,
    harness: Harness,
    fake_daily: FakeDaily,
) -> None:
    await dispatcher.rooms.grant("0" * 24, 60)  # domain config cached: the failure hits the room only
    before = harness.launched()
    fake_daily.fail(503, times=1000, method="POST", path_contains="/rooms")
    headers = {**AUTH, "Idempotency-Key": "half-way"}
    failed = await dispatcher.http.post("/start", json={}, headers=headers)
    assert failed.status_code == 502 and "Retry-After" not in failed.headers  # retrying this key cannot help
    error = failed.json()["error"]
    assert error["code"] == "session_setup_failed" and "new Idempotency-Key" in error["message"]
    fake_daily.knobs.failures.clear()
    replayed = await dispatcher.http.post("/start", json={}, headers=headers)
    live = [m for m in await dispatcher.machines.list() if m.session_id == error["session_id"] and m.state.is_active]
    assert len(live) <= 1  # never two machines for one key
    if harness.name == "gce" or (harness.name == "aci" and replayed.status_code == 201):
        assert replayed.status_code == 201  # the stopped VM or group was deleted, its name is free: it starts afresh
    elif isinstance(harness.fake, FakeAgentSandbox) and replayed.status_code == 200:
        # The claim is deleted in the foreground: until its Sandbox and pod are gone it is still there,
        # being deleted, and the retry replays the ended session, launching nothing.
        assert replayed.json()["status"] in ("ended", "failed") and len(harness.launched() - before) == 1
    elif harness.name == "k8s":  # the pod (or the claim) is gone: its name is free, the retry starts afresh
        assert replayed.status_code == 201
    elif harness.name == "aci":  # its group is still Deleting: the retry replays the ended session
        assert replayed.status_code == 200 and replayed.json()["status"] == "ended"
    else:  # Fly and ECS keep the stopped machine on record: the retry replays it, launching nothing
        assert replayed.status_code == 200 and replayed.json()["status"] in ("ended", "failed")
        assert len(harness.launched() - before) == 1
    fresh = await dispatcher.http.post("/start", json={}, headers={**AUTH, "Idempotency-Key": "half-way-2"})
    assert fresh.status_code == 201


@SERVICE_ONLY
async def test_a_failed_start_answers_without_waiting_for_dailys_slow_room_delete(
    dispatcher: Dispatcher,
    harness: Harness,
    fake_daily: FakeDaily,
) -> None:
    hold = fake_daily.hold(times=10, method="DELETE", path_contains="/rooms/")  # Daily deletes ~2/s
    harness.reject()
    # The room delete is held until released: a start that waited for it would never answer.
    response = await asyncio.wait_for(dispatcher.http.post("/start", json={}, headers=AUTH), timeout=60)
    assert response.status_code == 502
    assert len(fake_daily.rooms) == 1  # answered with the room not ended yet…
    assert await fake_daily.eventually(lambda: hold.caught == 1, timeout=10)  # …which is being ended
    hold.release()
    assert await fake_daily.eventually(lambda: fake_daily.rooms == {}, timeout=10)


async def test_no_secret_reaches_the_logs_or_an_error_response(
    dispatcher: Dispatcher,
    harness: Harness,
    fake_daily: FakeDaily,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if harness.identity_only:
        pytest.skip(NO_LAUNCH_VALUES)
    caplog.set_level(logging.DEBUG)
    started = (await dispatcher.http.post("/start", json={}, headers={**AUTH, "Idempotency-Key": "s"})).json()
    [bot_token] = [r["token"] for r in harness.received(started["session_id"])]
    await dispatcher.http.delete(f"/sessions/{started['session_id']}", headers=AUTH)
    harness.reject()
    failed = await dispatcher.http.post("/start", json={}, headers=AUTH)
    wrong = await dispatcher.http.post("/start", json={}, headers={"Authorization": f"Bearer {KEY}x"})
    secrets = [KEY, fake_daily.api_key, bot_token, started["token"]]
    shown = caplog.text + failed.text + wrong.text
    assert caplog.text  # the dispatcher did log
    assert [s for s in secrets if s in shown] == []


@SERVICE_ONLY
async def test_an_offer_to_a_cloud_session_is_404_at_once(dispatcher: Dispatcher, harness: Harness) -> None:
    sid = (await dispatcher.http.post("/start", json={}, headers=AUTH)).json()["session_id"]
    calls = len(harness.fake.calls)
    offer = {"sdp": "v=0", "type": "offer"}
    response = await dispatcher.http.post(f"/sessions/{sid}/api/offer", json=offer, headers=AUTH)
    assert response.status_code == 404 and response.json()["error"]["code"] == "no_signalling"
    # Refused before asking the provider anything: no waiting for a machine (still starting)
    # whose bot will never answer offers.
    assert len(harness.fake.calls) == calls


@SERVICE_ONLY
async def test_a_replay_gives_a_running_session_back_the_room_it_lost(
    dispatcher: Dispatcher, harness: Harness, fake_daily: FakeDaily
) -> None:
    headers = {**AUTH, "Idempotency-Key": "room-lost"}
    sid = (await dispatcher.http.post("/start", json={}, headers=headers)).json()["session_id"]
    await harness.move(sid, "started")
    await dispatcher.rooms.delete(sid)  # e.g. a first start that timed out ended it; its machine came up late
    replayed = await dispatcher.http.post("/start", json={}, headers=headers)
    assert replayed.status_code == 200 and replayed.json()["session_id"] == sid
    assert f"vf-{sid}" in fake_daily.rooms  # the bot has a room to join again


async def test_a_replay_of_an_ended_session_makes_no_room(
    dispatcher: Dispatcher, harness: Harness, fake_daily: FakeDaily
) -> None:
    headers = {**AUTH, "Idempotency-Key": "ended-by-itself"}
    sid = (await dispatcher.http.post("/start", json={}, headers=headers)).json()["session_id"]
    await harness.move(sid, "ended")  # the bot exited; the reaper then ends its room
    await dispatcher.rooms.delete(sid)
    replayed = await dispatcher.http.post("/start", json={}, headers=headers)
    assert replayed.status_code == 200 and replayed.json()["status"] == "ended"
    assert f"vf-{sid}" not in fake_daily.rooms  # nobody will join it: a room would only bill and linger


async def failed_start_with_its_room_delete_held(harness: Harness, fake_daily: FakeDaily) -> tuple[Any, Hold]:
    """A dispatcher of its own (the test closes it) whose one start failed; ending its room is held."""
    settings = Settings(machines=harness.name, api_key_hashes=frozenset({hash_api_key(KEY)}), max_session_seconds=600,
                        max_concurrent_sessions=100_000)
    rooms = DailyRooms(DailySettings.from_env(fake_daily.env))
    app = create_app(settings, env={}, machines=harness.make(), rooms=rooms)
    hold = fake_daily.hold(times=1, method="DELETE", path_contains="/rooms/")
    harness.reject()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as http:
        assert (await http.post("/start", json={}, headers=AUTH)).status_code == 502
    return app, hold


@SERVICE_ONLY
async def test_closing_the_dispatcher_waits_for_a_failed_starts_room_to_end(
    harness: Harness, fake_daily: FakeDaily
) -> None:
    app, hold = await failed_start_with_its_room_delete_held(harness, fake_daily)
    assert await fake_daily.eventually(lambda: hold.caught == 1)  # the room's end is on its way, held
    closing = asyncio.create_task(app.state.voicefleet.sessions.aclose(grace_seconds=120))
    done, _ = await asyncio.wait({closing}, timeout=0.5)
    assert not done  # a pending clean-up gets its grace before the dispatcher goes
    hold.release()
    await asyncio.wait_for(closing, 60)
    assert fake_daily.rooms == {}
    await app.state.voicefleet.aclose()


@SERVICE_ONLY
async def test_an_ended_session_reads_ended_though_dailys_presence_still_lists_its_bot(
    dispatcher: Dispatcher, harness: Harness, fake_daily: FakeDaily
) -> None:
    sid = (await dispatcher.http.post("/start", json={}, headers=AUTH)).json()["session_id"]
    fake_daily.join(f"vf-{sid}", f"bot-{sid}")
    await harness.move(sid, "ended")  # the bot exited; Daily's presence has not caught up yet
    got = (await dispatcher.http.get(f"/sessions/{sid}", headers=AUTH)).json()
    assert got["status"] == "ended" and "room_url" not in got


@SERVICE_ONLY
async def test_a_clean_up_still_pending_after_the_grace_is_dropped(harness: Harness, fake_daily: FakeDaily) -> None:
    app, hold = await failed_start_with_its_room_delete_held(harness, fake_daily)
    assert await fake_daily.eventually(lambda: hold.caught == 1)
    await asyncio.wait_for(app.state.voicefleet.sessions.aclose(grace_seconds=0.1), 60)
    # The reaper ends the room later; nothing of the closed dispatcher is left waiting on Daily.
    clean_ups = [t for t in asyncio.all_tasks() if t.get_name().startswith("end-room-")]
    assert all(t.done() or t.cancelling() for t in clean_ups)  # ended, or being cancelled
    hold.release()
    await app.state.voicefleet.aclose()


# The clean-up is the session service's, the same for every provider; the fake Fly holds a machine in
# `created` until the test moves it (moto runs an ECS task at once).
@pytest.mark.parametrize("harness", ["fly"], indirect=True)
async def test_a_waiting_start_whose_bot_fails_first_ends_its_room(
    dispatcher: Dispatcher, harness: Harness, fake_daily: FakeDaily
) -> None:
    key = "fails-before-it-runs"
    sid = new_session_id(Authenticator(frozenset({hash_api_key(KEY)})).identify(f"Bearer {KEY}").owner_key, key)
    starting = asyncio.create_task(
        dispatcher.http.post("/start?wait=started", json={}, headers={**AUTH, "Idempotency-Key": key}))

    def launched() -> bool:
        try:
            return f"vf-{sid}" in fake_daily.rooms and harness.live(sid) == 1
        except (IndexError, KeyError, AssertionError):  # not at the provider yet
            return False

    assert await fake_daily.eventually(launched, 30)
    await harness.move(sid, "failed")
    response = await asyncio.wait_for(starting, 60)
    assert response.status_code == 502 and response.json()["error"]["code"] == "start_failed", response.text
    assert await fake_daily.eventually(lambda: f"vf-{sid}" not in fake_daily.rooms, 30)  # nobody will join it
