"""ECS with a warm reserve (moto behind the proxy): idle tasks started by `vf-reserve` and tagged
idle, re-tagged with the session on claim, so stateless look-ups (another replica, the reaper)
find a claimed task like a cold one. The moto server lives for the whole test session: every test
uses its own bot ids and asserts on those only."""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import pytest
from websockets.asyncio.client import connect

from botchannel.contract import CHANNEL_PATH, Hello, Reply, Request, Welcome, encode, parse_frame
from dispatcher.app import create_app
from dispatcher.machines.base import MachinesError, MachineState
from dispatcher.machines.ecs.provider import EcsSettings
from dispatcher.machines.ecs.reserve import RESERVE_STARTED_BY, EcsWarmMachines
from dispatcher.settings import Settings
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.ecs import EcsProxy, moto_task
from tests.support.dispatcher_server import serving

CHANNEL_URL = "wss://dispatcher.example.com/bots/channel"
TOKEN = "f" * 40


def make(fake: EcsProxy) -> EcsWarmMachines:
    env = {**fake.env, "ECS_POLL_SECONDS": "0.05", "ECS_RETRY_DEADLINE_SECONDS": "3"}
    return EcsWarmMachines(EcsSettings.from_env(env),
        coordination=LocalCoordination(), channel_url=CHANNEL_URL)


@pytest.fixture
async def ecs(fake_ecs: EcsProxy):  # type: ignore[no-untyped-def]
    provider = make(fake_ecs)
    yield provider
    await provider.aclose()


def bot() -> str:
    return f"rsv-{secrets.token_hex(6)}"


def idle_run(fake: EcsProxy, bot_id: str) -> dict:
    [run] = [r for r in fake.requests_for("RunTask") if {"key": "voicefleet:idle", "value": bot_id} in r["tags"]]
    return run


def task_of(fake: EcsProxy, arn: str):  # type: ignore[no-untyped-def]
    return moto_task(fake.env["ECS_CLUSTER"], arn)


async def test_a_reserve_task_is_tagged_idle_and_carries_no_session_and_no_secret(ecs, fake_ecs) -> None:
    bot_id = bot()
    await ecs.launch_idle(bot_id, "vfb1.idle.its-own-credential")
    run = idle_run(fake_ecs, bot_id)
    assert run["startedBy"] == RESERVE_STARTED_BY and len(RESERVE_STARTED_BY) <= 36
    assert "voicefleet:session" not in {t["key"] for t in run["tags"]}
    [override] = run["overrides"]["containerOverrides"]
    env = {e["name"]: e["value"] for e in override["environment"]}
    assert env["BOT_CHANNEL_URL"] == CHANNEL_URL and env["BOT_MACHINE_ID"] == bot_id
    assert env["BOT_IMAGE_DIGEST"] == ecs.bot_image
    # The machine's own channel credential (never the deployment secret); no session values before a claim.
    assert env["BOT_CHANNEL_TOKEN"] == "vfb1.idle.its-own-credential"
    assert not {"DAILY_TOKEN", "VOICEFLEET_SESSION_ID"} & set(env)
    assert "command" not in override
    assert bot_id in {m.bot_id for m in await ecs.idle_machines()}
    assert all(m.machine_id != ecs._idle_arns[bot_id] for m in await ecs.list())  # not a session


def test_idle_tasks_serve_the_default_transport_with_its_task_definition(fake_ecs) -> None:
    env = {**fake_ecs.env, "ECS_TASK_DEFINITION_WEBRTC": "bot-webrtc:7"}
    webrtc = EcsWarmMachines(EcsSettings.from_env(env),
        coordination=LocalCoordination(), channel_url=CHANNEL_URL, transport="webrtc")
    params = webrtc._idle_params("rsv-1")
    env_of = {e["name"]: e["value"] for e in params["overrides"]["containerOverrides"][0]["environment"]}
    assert params["taskDefinition"] == webrtc.bot_image == "bot-webrtc:7"
    assert env_of["BOT_TRANSPORT"] == "webrtc" and env_of["BOT_IMAGE_DIGEST"] == "bot-webrtc:7"
    daily = EcsWarmMachines(EcsSettings.from_env(env),
        coordination=LocalCoordination(), channel_url=CHANNEL_URL)
    assert daily._idle_params("rsv-2")["taskDefinition"] == fake_ecs.env["ECS_TASK_DEFINITION"]


async def test_a_claim_retags_the_task_so_any_replica_finds_the_session(ecs, fake_ecs) -> None:
    bot_id = bot()
    await ecs.launch_idle(bot_id)
    s = spec()
    adopted = await ecs.adopt(bot_id, s)
    assert adopted.created and adopted.machine.session_id == s.session_id
    other_replica = make(fake_ecs)  # no cache: the task's tags are the record
    try:
        found = await other_replica.status(s.session_id)
        assert found is not None and found.machine_id == adopted.machine.machine_id
        assert found.state is MachineState.STARTED and found.body_digest == s.body_digest
        assert s.session_id in [m.session_id for m in await other_replica.list()]
        assert bot_id not in {m.bot_id for m in await other_replica.idle_machines()}
        with pytest.raises(MachinesError) as second:  # a bot serves one session, ever
            await other_replica.adopt(bot_id, spec())
        assert second.value.reason == "reserve_bot_gone"
        assert await other_replica.stop(s.session_id)
    finally:
        await other_replica.aclose()
    assert fake_ecs.requests_for("StopTask")[-1]["task"] == adopted.machine.machine_id
    tag = fake_ecs.requests_for("TagResource")[-1]
    assert tag["resourceArn"] == adopted.machine.machine_id
    assert {"key": "voicefleet:session", "value": s.session_id} in tag["tags"]
    assert fake_ecs.requests_for("UntagResource")[-1]["tagKeys"] == ["voicefleet:idle"]


async def test_a_second_claim_of_the_same_bot_fails_at_the_same_replica(ecs) -> None:
    bot_id = bot()
    await ecs.launch_idle(bot_id)
    await ecs.adopt(bot_id, spec())
    with pytest.raises(MachinesError):
        await ecs.adopt(bot_id, spec())


async def test_a_stopped_claimed_task_is_still_the_sessions(ecs, fake_ecs) -> None:
    bot_id = bot()
    await ecs.launch_idle(bot_id)
    s = spec()
    adopted = await ecs.adopt(bot_id, s)
    task = task_of(fake_ecs, adopted.machine.machine_id)
    task.last_status, task.desired_status = "STOPPED", "STOPPED"
    task.containers[0].exitCode = 0
    other_replica = make(fake_ecs)
    try:
        found = await other_replica.status(s.session_id)
        assert found is not None and found.state is MachineState.ENDED
    finally:
        await other_replica.aclose()


async def test_a_retired_reserve_task_is_stopped(ecs, fake_ecs) -> None:
    bot_id = bot()
    await ecs.launch_idle(bot_id)
    arn = ecs._idle_arns[bot_id]
    other_replica = make(fake_ecs)  # finds it by its tag, without the launcher's cache
    try:
        await other_replica.retire(bot_id)
    finally:
        await other_replica.aclose()
    assert task_of(fake_ecs, arn).desired_status == "STOPPED"
    assert bot_id not in {m.bot_id for m in await ecs.idle_machines()}
    await ecs.retire("rsv-never-was")  # no-op


async def test_a_throttled_tag_call_is_retried(ecs, fake_ecs) -> None:
    bot_id = bot()
    await ecs.launch_idle(bot_id)
    fake_ecs.fail_action("TagResource", error="ThrottlingException", status=400, times=2)
    s = spec()
    adopted = await ecs.adopt(bot_id, s)
    assert adopted.machine.session_id == s.session_id
    assert len(fake_ecs.requests_for("TagResource")) == 3


async def test_a_refused_tag_call_is_a_clear_provider_error(ecs, fake_ecs) -> None:
    bot_id = bot()
    await ecs.launch_idle(bot_id)
    fake_ecs.fail_action("TagResource", error="AccessDeniedException", status=400)
    with pytest.raises(MachinesError) as caught:
        await ecs.adopt(bot_id, spec())
    assert caught.value.reason == "ecs_unauthorized"
    await ecs.retire(bot_id)  # what the reserve does next: the launcher's cache still knows it
    assert bot_id not in {m.bot_id for m in await ecs.idle_machines()}


@contextlib.asynccontextmanager
async def dispatcher_with_an_idle_bot(fake: EcsProxy, capabilities: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """A dispatcher whose reserve launched one task at the fake, and that task's bot dialled in
    (played by this test, as a real one would speak)."""
    env = {**fake.env, "BOT_CHANNEL_URL": CHANNEL_URL, "RESERVE_MIN_IDLE": "1", "RESERVE_BUFFER": "0",
           "RESERVE_BURST": "0"}
    machines = make(fake)
    app = create_app(Settings(machines="ecs", bot_channel_token=TOKEN, api_key_hashes=frozenset({b"x"})), env=env,
                     machines=machines, rooms=None)
    state = app.state.voicefleet
    async with serving(app) as port:
        await state.reserve.refill()
        [bot_id] = list(machines._idle_arns)
        [override] = idle_run(fake, bot_id)["overrides"]["containerOverrides"]
        credential = {e["name"]: e["value"] for e in override["environment"]}["BOT_CHANNEL_TOKEN"]  # its own
        ws = await connect(f"ws://127.0.0.1:{port}{CHANNEL_PATH}",
                           additional_headers={"Authorization": f"Bearer {credential}"}, proxy=None)
        identity = await fake.task_identity(machines._idle_arns[bot_id])  # its task role's, as bot/identity.py
        await ws.send(encode(Hello(machine_id=bot_id, image=machines.bot_image, capabilities=capabilities,
                                   identity=identity)))
        assert isinstance(parse_frame(await ws.recv()), Welcome)
        assert await state.channels.wait_until(lambda: len(state.channels.idle()) == 1, 10)
        yield state, machines._idle_arns[bot_id], bot_id, ws
        await ws.close()
    await state.aclose()


async def test_post_start_claims_an_idle_ecs_bot_over_the_channel(fake_ecs) -> None:
    async with dispatcher_with_an_idle_bot(fake_ecs, ("daily",)) as (state, arn, _, ws):

        async def accept() -> dict:
            request = parse_frame(await ws.recv())
            assert isinstance(request, Request) and request.method == "assign"
            await ws.send(encode(Reply(request.id, result={"session_id": request.params["session_id"]})))
            return dict(request.params)

        accepting = asyncio.create_task(accept())
        s = spec()
        result = await state.reserve.launch(s)
        assignment = await accepting
        assert result.created and result.machine.machine_id == arn
        assert (assignment["transport"], assignment["room_url"]) == ("daily", s.room_url)
        tags = {t["key"]: t["value"] for t in task_of(fake_ecs, arn).tags}
        assert tags["voicefleet:session"] == s.session_id and "voicefleet:idle" not in tags


async def test_a_half_claimed_task_is_never_offered_as_idle(ecs, fake_ecs) -> None:
    bot_id = bot()
    await ecs.launch_idle(bot_id)
    fake_ecs.fail_action("UntagResource", error="AccessDeniedException", status=400)
    with pytest.raises(MachinesError):
        await ecs.adopt(bot_id, spec())  # session tag written, idle tag left
    assert bot_id not in {m.bot_id for m in await ecs.idle_machines()}
    await ecs.retire(bot_id)


async def test_a_webrtc_session_is_not_offered_to_an_idle_daily_bot(fake_ecs) -> None:
    async with dispatcher_with_an_idle_bot(fake_ecs, ("daily",)) as (state, _, bot_id, _ws):
        webrtc = spec().__class__(**{**spec().__dict__, "room_url": None, "bot_token": None})
        result = await state.reserve.launch(webrtc)  # cold: RunTask started by the session
        assert result.created and fake_ecs.requests_for("RunTask")[-1]["startedBy"] == webrtc.session_id
        assert [link.machine_id for link in state.channels.idle()] == [bot_id]  # never asked, still idle
