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


async def test_a_start_launches_with_its_room_a_replay_launches_nothing_and_no_secret_is_shown(
    dispatcher: Dispatcher,
    harness: Harness,
    fake_daily: FakeDaily,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One dispatcher: a start's launch values, its replays (running, ended), its delete, and what the
    logs and error answers show of every secret over all of them."""
    caplog.set_level(logging.DEBUG)
    headers = {**AUTH, "Idempotency-Key": "call-7"}
    first = await dispatcher.http.post("/start", json={"body": {"persona": "x"}}, headers=headers)
    assert first.status_code == 201, first.text
    session = first.json()
    sid = session["session_id"]
    received = harness.received(sid)
    assert len(received) == 1, f"{len(received)} launches for one start"
    if not harness.identity_only:  # NO_LAUNCH_VALUES
        assert received[0]["room_url"] == session["room_url"] == f"https://voicefleet-test.daily.co/vf-{sid}"
        assert fake_daily.verify_token(received[0]["token"])["r"] == f"vf-{sid}", "the bot's token is for another room"
    assert f"vf-{sid}" in fake_daily.rooms, "no room for the session"

    again = await dispatcher.http.post("/start", json={"body": {"persona": "x"}}, headers=headers)
    assert again.status_code == 200 and len(harness.received(sid)) == 1, ("a replay launched again", again.text)
    # The replay is as usable as the first answer: the same room, and a caller's token for it.
    assert again.json()["room_url"] == session["room_url"], "a replay's room differs"
    claims = fake_daily.verify_token(again.json()["token"])
    assert (claims["r"], claims["ud"], claims["o"]) == (f"vf-{sid}", f"user-{sid}", False), claims

    if harness.name == "fly":
        harness.fake.destroyed_ttl = 0  # as strict as Fly gets: a destroyed machine is gone at once
    await harness.move(sid, "started")
    deleted = await dispatcher.http.delete(f"/sessions/{sid}", headers=AUTH)
    # Each provider reports the stopped machine as ended at once (a stopping ECS task, a VM
    # being deleted, a destroyed Fly machine): 204. (202, a machine still running after its
    # stop: tests/dispatcher/api/test_delete_status.py.)
    assert deleted.status_code == 204, deleted.text
    assert harness.live(sid) == 0, "a deleted session's machine still runs"
    assert f"vf-{sid}" not in fake_daily.rooms, "the room outlived its bot"
    deleted_again = await dispatcher.http.delete(f"/sessions/{sid}", headers=AUTH)
    assert deleted_again.status_code == 204, deleted_again.text

    ended_headers = {**AUTH, "Idempotency-Key": "ended-by-itself"}
    ended = (await dispatcher.http.post("/start", json={}, headers=ended_headers)).json()["session_id"]
    await harness.move(ended, "ended")  # the bot exited; the reaper then ends its room
    await dispatcher.rooms.delete(ended)
    replayed = await dispatcher.http.post("/start", json={}, headers=ended_headers)
    assert replayed.status_code == 200 and replayed.json()["status"] == "ended", replayed.text
    assert f"vf-{ended}" not in fake_daily.rooms, "a replay of an ended session made a room nobody will join"

    harness.reject()
    failed = await dispatcher.http.post("/start", json={}, headers=AUTH)
    wrong = await dispatcher.http.post("/start", json={}, headers={"Authorization": f"Bearer {KEY}x"})
    secrets = [KEY, fake_daily.api_key, session["token"], *(r["token"] for r in received if r["token"])]
    shown = caplog.text + failed.text + wrong.text
    assert caplog.text, "the dispatcher did not log"
    assert [s for s in secrets if s in shown] == [], "a secret reached the logs or an error answer"


async def test_a_failed_room_leaves_no_machine_and_a_start_stopped_half_way_asks_for_a_new_key(
    dispatcher: Dispatcher,
    harness: Harness,
    fake_daily: FakeDaily,
) -> None:
    await dispatcher.rooms.grant("0" * 24, 60)  # domain config cached: the failure hits the room only
    before = harness.launched()  # moto is shared by the tests
    fake_daily.fail(400, method="POST", path_contains="/rooms", body={"error": "invalid-request-error", "info": "no"})
    response = await dispatcher.http.post("/start", json={}, headers={**AUTH, "Idempotency-Key": "k"})
    assert response.status_code == 502, response.text
    [sid] = harness.launched() - before
    machine = await dispatcher.machines.status(sid)
    assert machine is None or not machine.state.is_active, ("a failed room's machine runs", machine)

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
async def test_what_a_session_shows_its_caller_through_its_life(
    dispatcher: Dispatcher,
    harness: Harness,
    fake_daily: FakeDaily,
) -> None:
    """One dispatcher, a session per claim: the caller's token, GET's fields, Daily's presence (joined,
    failing, lagging an end), a key reused with another body, an offer, a replay that gives a room back."""
    if not harness.identity_only:
        session = (await dispatcher.http.post("/start", json={}, headers=AUTH)).json()
        [received] = harness.received(session["session_id"])
        assert session["token"] != received["token"], "the caller got the bot's token"
        assert fake_daily.verify_token(session["token"])["o"] is False, "the caller's token is an owner's"

    started = (await dispatcher.http.post("/start", json={}, headers=AUTH)).json()
    sid = started["session_id"]
    got = (await dispatcher.http.get(f"/sessions/{sid}", headers=AUTH)).json()
    assert got["room_url"] == started["room_url"], got
    assert "token" not in got and started["token"] not in str(got), "GET shows a token"
    calls = len(harness.fake.calls)
    offer = {"sdp": "v=0", "type": "offer"}
    response = await dispatcher.http.post(f"/sessions/{sid}/api/offer", json=offer, headers=AUTH)
    assert response.status_code == 404 and response.json()["error"]["code"] == "no_signalling", response.text
    # Refused before asking the provider anything: no waiting for a machine (still starting)
    # whose bot will never answer offers.
    assert len(harness.fake.calls) == calls, "an offer to a cloud session asked the provider"

    await harness.move(sid, "started")
    assert (await dispatcher.http.get(f"/sessions/{sid}", headers=AUTH)).json()["status"] == "started"
    fake_daily.join(f"vf-{sid}", f"bot-{sid}")
    assert (await dispatcher.http.get(f"/sessions/{sid}", headers=AUTH)).json()["status"] == "joined"
    fake_daily.fail(500, times=1000, path_contains="/presence")
    got_anyway = await dispatcher.http.get(f"/sessions/{sid}", headers=AUTH)
    assert got_anyway.status_code == 200 and got_anyway.json()["status"] == "started", "a failing presence check"
    fake_daily.knobs.failures.clear()
    await harness.move(sid, "ended")  # the bot exited; Daily's presence has not caught up yet
    ended = (await dispatcher.http.get(f"/sessions/{sid}", headers=AUTH)).json()
    assert ended["status"] == "ended" and "room_url" not in ended, ("an ended session read as joined", ended)

    reused = {**AUTH, "Idempotency-Key": "call-8"}
    await dispatcher.http.post("/start", json={"body": {"a": 1}}, headers=reused)
    conflict = await dispatcher.http.post("/start", json={"body": {"a": 2}}, headers=reused)
    assert conflict.status_code == 409, "a reused key with another body was not a conflict"

    lost = {**AUTH, "Idempotency-Key": "room-lost"}
    lost_sid = (await dispatcher.http.post("/start", json={}, headers=lost)).json()["session_id"]
    await harness.move(lost_sid, "started")
    await dispatcher.rooms.delete(lost_sid)  # e.g. a first start that timed out ended it; its machine came up late
    replayed = await dispatcher.http.post("/start", json={}, headers=lost)
    assert replayed.status_code == 200 and replayed.json()["session_id"] == lost_sid, replayed.text
    assert f"vf-{lost_sid}" in fake_daily.rooms, "the bot has no room to join again"


# The room's clean-up and the 503 are the service's; each provider's refusal (`_rejected`, no retry) and
# throttling (`_throttled`, with its hint):
# test_contract.py::test_a_throttled_launch_is_retried_persistent_throttling_has_a_hint_and_a_refusal_none.
@SERVICE_ONLY
async def test_a_refused_start_answers_at_once_and_leaves_no_room_and_throttling_answers_503(
    dispatcher: Dispatcher,
    harness: Harness,
    fake_daily: FakeDaily,
) -> None:
    hold = fake_daily.hold(times=10, method="DELETE", path_contains="/rooms/")  # Daily deletes ~2/s
    harness.reject()
    # The room delete is held until released: a start that waited for it would never answer.
    response = await asyncio.wait_for(dispatcher.http.post("/start", json={}, headers=AUTH), timeout=60)
    assert response.status_code == 502 and response.json()["error"]["code"] == f"{harness.name}_rejected"
    assert len(fake_daily.rooms) == 1  # answered with the room not ended yet…
    assert await fake_daily.eventually(lambda: hold.caught == 1, timeout=10)  # …which is being ended
    hold.release()
    assert await fake_daily.eventually(lambda: fake_daily.rooms == {}, timeout=10), "a refused start's room lingers"

    harness.throttle(1000)
    throttled = await dispatcher.http.post("/start", json={}, headers=AUTH)
    assert throttled.status_code == 503, throttled.text
    assert int(throttled.headers["Retry-After"]) >= 1


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
