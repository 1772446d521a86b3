"""Fly with a warm reserve: idle machines tagged idle at Fly, re-tagged with the session on claim,
so stateless look-ups (another replica, the reaper) find a claimed machine like a cold one."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.machines.base import MachinesError, MachineState
from dispatcher.machines.fly.provider import FlySettings
from dispatcher.machines.fly.reserve import FlyWarmMachines
from dispatcher.media.daily import DailyRooms, DailySettings
from dispatcher.settings import Settings, hash_api_key
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.harness import fly_identity
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.daily import FakeDaily
from tests.fakes.fly import FakeFly
from tests.support.dispatcher_server import serving
from tests.support.http_client import api_client
from tests.support.reserve_bot import accept_assignment, claim, dial_idle

CHANNEL_URL = "ws://10.0.0.2:8080/bots/channel"
TOKEN = "f" * 40


@pytest.fixture
async def fly(fake_fly: FakeFly):  # type: ignore[no-untyped-def]
    provider = FlyWarmMachines(FlySettings.from_env(fake_fly.env), LocalCoordination(), channel_url=CHANNEL_URL)
    yield provider
    await provider.aclose()


def idle_machine(fake: FakeFly, bot_id: str) -> dict:
    return fake.by_name(f"vf-idle-{bot_id}")


async def test_a_reserve_machine_is_tagged_idle_and_carries_no_session_and_no_secret(fly, fake_fly) -> None:
    await fly.launch_idle("b1")
    config = idle_machine(fake_fly, "b1")["config"]
    assert config["metadata"]["voicefleet_idle"] == "b1"
    assert "voicefleet_session" not in config["metadata"]
    assert config["env"]["BOT_CHANNEL_URL"] == CHANNEL_URL and config["env"]["BOT_MACHINE_ID"] == "b1"
    assert not {"BOT_CHANNEL_TOKEN", "DAILY_TOKEN", "VOICEFLEET_SESSION_ID"} & set(config["env"])  # a Fly secret
    assert config["auto_destroy"] is True
    assert [m.bot_id for m in await fly.idle_machines()] == ["b1"]
    assert await fly.list() == []  # not a session: admission does not count it


async def test_a_claim_retags_the_machine_so_any_replica_finds_the_session(fly, fake_fly) -> None:
    await fly.launch_idle("b2")
    fake_fly.set_state("vf-idle-b2", "started")
    s = spec()
    adopted = await fly.adopt("b2", s)
    assert adopted.created and adopted.machine.session_id == s.session_id
    other_replica = FlyWarmMachines(FlySettings.from_env(fake_fly.env), LocalCoordination(), channel_url=CHANNEL_URL)
    try:
        found = await other_replica.status(s.session_id)  # no cache: Fly's metadata is the record
        assert found is not None and found.state is MachineState.STARTED
        assert found.body_digest == s.body_digest
        assert [m.session_id for m in await other_replica.list()] == [s.session_id]
        assert await other_replica.idle_machines() == []
        assert await other_replica.stop(s.session_id)
    finally:
        await other_replica.aclose()
    writes = [c for c in fake_fly.calls if "/metadata/" in c.path]
    assert [c.path.rsplit("/", 1)[1] for c in writes][-1] == "voicefleet_session"  # the session tag last


async def test_a_retired_reserve_machine_is_destroyed(fly, fake_fly) -> None:
    await fly.launch_idle("b3")
    fake_fly.set_state("vf-idle-b3", "started")
    await fly.retire("b3")
    assert [m["state"] for m in fake_fly.machines.values()] == ["destroyed"]
    assert await fly.idle_machines() == []


async def test_a_claimed_machine_is_no_longer_the_reserve_bots_to_retire(fly, fake_fly) -> None:
    await fly.launch_idle("b5")
    fake_fly.set_state("vf-idle-b5", "started")
    s = spec()
    await fly.adopt("b5", s)
    await fly.retire("b5")  # e.g. its idle channel was reported lost after the claim
    assert [m["state"] for m in fake_fly.machines.values()] == ["started"]  # the session keeps its bot
    assert (await fly.status(s.session_id)) is not None


async def test_a_retired_reserve_bot_cannot_be_claimed_afterwards(fly, fake_fly) -> None:
    await fly.launch_idle("b6")
    fake_fly.set_state("vf-idle-b6", "started")
    await fly.retire("b6")
    with pytest.raises(MachinesError) as gone:
        await fly.adopt("b6", spec())
    assert gone.value.reason == "reserve_bot_gone"


async def test_retiring_a_reserve_bot_whose_machine_is_already_gone_is_harmless(fly, fake_fly) -> None:
    await fly.launch_idle("b7")
    fake_fly.machines.clear()  # the idle bot exited, auto_destroy removed it, and Fly forgot it: 404
    await fly.retire("b7")
    assert [c.method for c in fake_fly.calls][-1] == "DELETE"  # asked, got 404, and that is fine


async def test_the_fake_refuses_a_fourth_metadata_write_in_a_burst_as_fly_does(fly, fake_fly) -> None:
    await fly.launch_idle("b4")
    machine_id = idle_machine(fake_fly, "b4")["id"]
    headers = {"Authorization": f"Bearer {fake_fly.token}"}
    url = f"{fake_fly.url}/v1/apps/{fake_fly.app_name}/machines/{machine_id}/metadata"
    async with httpx.AsyncClient(headers=headers, timeout=60) as client:
        statuses = [(await client.post(f"{url}/k{n}", json={"value": "v"})).status_code for n in range(4)]
    assert statuses == [204, 204, 204, 429]


async def test_post_start_claims_an_idle_fly_bot_over_the_channel(fake_fly) -> None:
    env = {**fake_fly.env, "BOT_CHANNEL_URL": CHANNEL_URL, "RESERVE_MIN_IDLE": "1", "RESERVE_BUFFER": "0",
           "RESERVE_BURST": "0"}
    machines = FlyWarmMachines(FlySettings.from_env(fake_fly.env), LocalCoordination(), channel_url=CHANNEL_URL)
    app = create_app(Settings(machines="fly", bot_channel_token=TOKEN, api_key_hashes=frozenset({b"x"})), env=env,
                     machines=machines, rooms=None)
    state = app.state.voicefleet
    async with serving(app) as port:
        await state.reserve.refill()  # launches one reserve machine at the fake
        [machine] = list(fake_fly.machines.values())
        bot_id = machine["config"]["env"]["BOT_MACHINE_ID"]
        assert machine["config"]["env"]["BOT_IDENTITY"] == "fly"  # its bot proves its Machine
        identity = await fly_identity(fake_fly, machine["name"])()  # it starts; its bot asks its API socket
        # The machine's bot dials in, as a real one would.
        ws = await dial_idle(state, port, bot_id, machine["config"]["image"], identity)
        s = spec()
        result, assignment = await claim(state.reserve, ws, s)
        assert result.created and result.machine.machine_id == machine["id"]
        assert (assignment["transport"], assignment["room_url"]) == ("daily", s.room_url)
        assert machine["config"]["metadata"]["voicefleet_session"] == s.session_id
        await ws.close()
    await state.aclose()


async def test_a_dead_dispatchers_idle_machines_are_reaped_by_the_next_one_past_their_idle_age(fake_fly) -> None:
    dead = FlyWarmMachines(FlySettings.from_env(fake_fly.env), LocalCoordination(), channel_url=CHANNEL_URL)
    await dead.launch_idle("old")
    await dead.launch_idle("young")
    await dead.aclose()  # its dispatcher is gone: nobody will retire these
    fake_fly.by_name("vf-idle-old")["config"]["metadata"]["voicefleet_created_at"] = "1000"  # long ago
    for name in ("vf-idle-old", "vf-idle-young"):
        fake_fly.set_state(name, "started")
    env = {**fake_fly.env, "BOT_CHANNEL_URL": CHANNEL_URL, "RESERVE_MAX_IDLE_SECONDS": "900"}
    machines = FlyWarmMachines(FlySettings.from_env(fake_fly.env), LocalCoordination(), channel_url=CHANNEL_URL)
    app = create_app(Settings(machines="fly", bot_channel_token=TOKEN, api_key_hashes=frozenset({b"x"})), env=env,
                     machines=machines, rooms=None)
    reserve = app.state.voicefleet.reserve
    assert await reserve.sweep() == 1
    states = {m["name"]: m["state"] for m in fake_fly.machines.values()}
    assert states == {"vf-idle-old": "destroyed", "vf-idle-young": "started"}
    await app.state.voicefleet.aclose()


async def test_a_session_on_a_claimed_fly_bot_is_found_by_get_and_by_a_replay(
    fake_fly: FakeFly, fake_daily: FakeDaily
) -> None:
    # A claimed machine carries no transport tag (Fly's write limit leaves no room for a fourth
    # metadata write): the dispatcher must still know it as the session's machine.
    key = "warm-fly-key-0123456789"
    auth = {"Authorization": f"Bearer {key}", "Idempotency-Key": "warm-1"}
    env = {**fake_fly.env, "BOT_CHANNEL_URL": CHANNEL_URL, "RESERVE_MIN_IDLE": "1", "RESERVE_BUFFER": "0",
           "RESERVE_BURST": "0"}
    machines = FlyWarmMachines(FlySettings.from_env(fake_fly.env), LocalCoordination(), channel_url=CHANNEL_URL)
    app = create_app(Settings(machines="fly", bot_channel_token=TOKEN, api_key_hashes=frozenset({hash_api_key(key)})),
                     env=env, machines=machines, rooms=DailyRooms(DailySettings.from_env(fake_daily.env)))
    state = app.state.voicefleet
    async with serving(app) as port, api_client(base_url=f"http://127.0.0.1:{port}") as http:
        await state.reserve.refill()
        [machine] = list(fake_fly.machines.values())
        identity = await fly_identity(fake_fly, machine["name"])()
        ws = await dial_idle(state, port, machine["config"]["env"]["BOT_MACHINE_ID"], machine["config"]["image"],
                             identity)
        accepting = asyncio.create_task(accept_assignment(ws))
        started = await http.post("/start", json={}, headers=auth)
        assert started.status_code == 201, started.text
        assert (await accepting)["session_id"] == (sid := started.json()["session_id"])
        assert "voicefleet_transport" not in machine["config"]["metadata"]
        got = await http.get(f"/sessions/{sid}", headers=auth)
        assert got.status_code == 200 and got.json()["status"] == "started"
        assert got.json()["room_url"] == started.json()["room_url"]
        replayed = await http.post("/start", json={}, headers=auth)
        assert (replayed.status_code, replayed.json()["session_id"]) == (200, sid)
        assert replayed.json()["room_url"] == started.json()["room_url"]
        assert len(fake_fly.machines) == 1  # the replay launched nothing
        await ws.close()
    await state.aclose()


async def test_a_refill_launches_within_flys_create_limit_and_keeps_a_slot_for_a_cold_start(fake_fly) -> None:
    fly_env = {**fake_fly.env, "FLY_CREATE_RATE": "0.01", "FLY_CREATE_BURST": "3"}  # 3 creates, then ~none
    env = {**fly_env, "BOT_CHANNEL_URL": CHANNEL_URL, "RESERVE_MIN_IDLE": "10", "RESERVE_MAX_IDLE": "10"}
    machines = FlyWarmMachines(FlySettings.from_env(fly_env), LocalCoordination(), channel_url=CHANNEL_URL)
    app = create_app(Settings(machines="fly", bot_channel_token=TOKEN, api_key_hashes=frozenset({b"x"})), env=env,
                     machines=machines, rooms=None)
    await app.state.voicefleet.reserve.refill()
    creates = [c for c in fake_fly.calls if c.method == "POST" and c.path.endswith("/machines")]
    assert len(creates) == 2  # the bucket's 3, less the one a caller's cold start may need
    await app.state.voicefleet.aclose()


async def test_a_reserve_creates_retry_never_takes_the_token_kept_for_a_cold_start(fake_fly: FakeFly) -> None:
    """A refill takes a token only while another remains for a cold start; its create's retry (after a 503) is
    one more create, taken as a refill's: with no spare token it gives up, and the cold launch after it goes."""
    fake_fly.create_per_second = 0.001
    env = {**fake_fly.env, "FLY_CREATE_RATE": "0.001", "FLY_CREATE_BURST": "2", "FLY_CREATE_MAX_WAIT": "0"}
    provider = FlyWarmMachines(FlySettings.from_env(env), LocalCoordination(), channel_url=CHANNEL_URL)
    fake_fly.fail(503, times=1, method="POST", path_suffix="/machines")
    try:
        assert (await provider.creates.refill()).granted  # the spare token: one left for a cold start
        with pytest.raises(MachinesError) as refill:
            await provider.launch_idle("b9")
        launched = await provider.launch(spec())
    finally:
        await provider.aclose()
    assert refill.value.reason == "fly_unavailable"  # the 503 may have made it: looked for
    assert launched.created
    assert len(fake_fly.calls_to("POST", "/machines")) == 2 and fake_fly.refused_creates == 0
