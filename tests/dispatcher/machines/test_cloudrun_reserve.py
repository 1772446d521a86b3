"""Cloud Run with a warm reserve: idle executions of the job wait on the channel; a claim is
recorded in the coordination store (an execution cannot be re-tagged), so any replica finds the
session's execution. Two providers on one real redis-server (the stack's user) stand for two
replicas; the fake jobs API is the documented contract (tests/fakes/cloud_run_jobs.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from botchannel.contract import Hello
from dispatcher.channel.credentials import BotGrant
from dispatcher.factory import build_coordination
from dispatcher.machines.base import MachinesError, MachineState
from dispatcher.machines.cloudrun.provider import CloudRunSettings
from dispatcher.machines.cloudrun.reserve import SESSION, CloudRunWarmMachines
from dispatcher.store.client import DEFAULT_PREFIX, StoreUnavailable
from tests.dispatcher.machines.test_cloudrun import bot_token
from tests.dispatcher.machines.test_contract import spec
from tests.fakes.cloud_run_jobs import FakeCloudRunJobs
from tests.support.redis_server import redis_server

SECRET = "c" * 40  # BOT_CHANNEL_TOKEN: the deployment's channel secret
LIFETIME = {"max_idle_seconds": 900.0, "max_session_seconds": 1800}


@pytest.fixture
async def replicas(fake_cloud_run_jobs: FakeCloudRunJobs, tmp_path: Path,
                   request: pytest.FixtureRequest) -> AsyncIterator[tuple[CloudRunWarmMachines, CloudRunWarmMachines]]:
    """Two replicas' providers, each with the coordination a dispatcher builds from its env."""
    with redis_server(tmp_path) as server:
        prefix = f"{DEFAULT_PREFIX}{request.node.name[:24]}:"  # the stack user's keys
        stores = [build_coordination({**server.env, "REPLICA_ID": name, "REDIS_KEY_PREFIX": prefix})
                  for name in ("r-a", "r-b")]
        settings = CloudRunSettings.from_env(fake_cloud_run_jobs.env)
        pair = [CloudRunWarmMachines(settings, coordination=store, channel_secret=SECRET, **LIFETIME)
                for store in stores]
        yield pair[0], pair[1]
        for machines, store in zip(pair, stores, strict=True):
            await machines.aclose()
            await store.aclose()


async def started_idle(machines: CloudRunWarmMachines, fake: FakeCloudRunJobs, bot_id: str) -> str:
    """Run reserve bot `bot_id`'s execution and let it start; its name."""
    await machines.launch_idle(bot_id, channel_token=f"cred.{bot_id}")
    [name] = [n for n, e in fake.executions.items() if fake.env_of(e).get("VOICEFLEET_IDLE_BOT") == bot_id]
    fake.set_state(name, "started")
    return name.rsplit("/", 1)[-1]  # its machine id


async def test_a_reserve_execution_waits_with_no_session_and_its_own_credential_and_lifetime(
    replicas: tuple[CloudRunWarmMachines, CloudRunWarmMachines], fake_cloud_run_jobs: FakeCloudRunJobs
) -> None:
    a, _ = replicas
    name = await started_idle(a, fake_cloud_run_jobs, "rsv-1")
    execution = fake_cloud_run_jobs.execution(name)
    env = fake_cloud_run_jobs.env_of(execution)
    assert (env["BOT_MACHINE_ID"], env["BOT_CHANNEL_TOKEN"], env["BOT_IDENTITY"]) == ("rsv-1", "cred.rsv-1", "cloudrun")
    assert "VOICEFLEET_SESSION_ID" not in env and env["VOICEFLEET_EXECUTION_NONCE"]
    assert execution["template"]["timeout"] == f"{900 + 1800 + 120}s"  # idle wait, then a whole session
    assert [m.bot_id for m in await a.idle_machines()] == ["rsv-1"]
    assert await a.list() == []  # not a session: admission does not count it


async def test_a_claim_is_recorded_in_the_store_so_the_other_replica_finds_and_stops_the_session(
    replicas: tuple[CloudRunWarmMachines, CloudRunWarmMachines], fake_cloud_run_jobs: FakeCloudRunJobs
) -> None:
    a, b = replicas
    name = await started_idle(a, fake_cloud_run_jobs, "rsv-2")
    s = dataclasses.replace(spec(), transport="webrtc")
    adopted = await a.adopt("rsv-2", s)
    assert adopted.claimed and adopted.machine.session_id == s.session_id and adopted.machine.machine_id == name
    found = await b.status(s.session_id)  # never saw the run nor the claim: the store's record
    assert found is not None and found.state is MachineState.STARTED
    assert (found.machine_id, found.body_digest, found.transport) == (name, s.body_digest, "webrtc")
    assert [m.session_id for m in await b.list()] == [s.session_id]  # counted as a session now
    assert await b.idle_machines() == []  # and no longer as idle
    with pytest.raises(MachinesError) as caught:
        await b.adopt("rsv-2", spec())  # claimed once
    assert caught.value.reason == "reserve_bot_taken"
    assert await b.stop(s.session_id)
    assert fake_cloud_run_jobs.execution(name).get("cancelledCount") == 1


async def test_the_sweep_cancels_an_idle_execution_and_each_idle_run_takes_a_run_token(
    replicas: tuple[CloudRunWarmMachines, CloudRunWarmMachines], fake_cloud_run_jobs: FakeCloudRunJobs
) -> None:
    a, b = replicas
    name = await started_idle(a, fake_cloud_run_jobs, "rsv-3")
    await b.retire("rsv-3")  # the other replica's sweep: found by its env
    assert fake_cloud_run_jobs.execution(name).get("cancelledCount") == 1
    assert await a.idle_machines() == []
    assert a.create_rate == a.settings.run_rate  # the reserve's refills are paced by the run rate


async def test_a_sweep_that_listed_a_bot_idle_leaves_it_to_the_session_that_claimed_it_since(
    replicas: tuple[CloudRunWarmMachines, CloudRunWarmMachines], fake_cloud_run_jobs: FakeCloudRunJobs
) -> None:
    a, b = replicas
    name = await started_idle(a, fake_cloud_run_jobs, "rsv-9")
    assert [m.bot_id for m in await b.idle_machines()] == ["rsv-9"]  # b's sweep saw it idle
    s = dataclasses.replace(spec(), transport="webrtc")
    await a.adopt("rsv-9", s)  # meanwhile a's session claims it
    await b.retire("rsv-9")  # b's sweep goes on
    assert fake_cloud_run_jobs.execution(name).get("cancelledCount") is None
    found = await a.status(s.session_id)
    assert found is not None and found.state is MachineState.STARTED


async def test_a_claim_whose_record_cannot_be_written_cancels_its_execution(
    replicas: tuple[CloudRunWarmMachines, CloudRunWarmMachines], fake_cloud_run_jobs: FakeCloudRunJobs,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bot's claim is the session's by then, so a retirement leaves it: adopt cancels it itself."""
    a, _ = replicas
    name = await started_idle(a, fake_cloud_run_jobs, "rsv-12")

    async def store_down(*args: object) -> None:
        raise StoreUnavailable("the store did not answer")

    monkeypatch.setattr(a._records, "put", store_down)
    with pytest.raises(StoreUnavailable):
        await a.adopt("rsv-12", spec())
    assert fake_cloud_run_jobs.execution(name).get("cancelledCount") == 1


@pytest.mark.parametrize("delete_fails", [False, True], ids=["deleted", "left-behind"])
async def test_a_claim_half_written_hands_its_cancelled_execution_to_no_cold_start(
    replicas: tuple[CloudRunWarmMachines, CloudRunWarmMachines], fake_cloud_run_jobs: FakeCloudRunJobs,
    monkeypatch: pytest.MonkeyPatch, delete_fails: bool,
) -> None:
    """The session's claim record is written, the bot's is not (the store stopped answering): the claim
    fails and its execution is cancelled. The session's cold start then runs its own execution, at either
    replica: its claim record is deleted, and one the store would not delete is not a whole claim."""
    a, b = replicas
    name = await started_idle(a, fake_cloud_run_jobs, "rsv-13")
    put, writes = a._records.put, []

    async def second_write_fails(key: str, values: dict[str, object], ttl: float) -> None:
        writes.append(key)
        if len(writes) > 1:
            raise StoreUnavailable("the store did not answer")
        await put(key, values, ttl)

    async def store_down(*args: object) -> None:
        raise StoreUnavailable("the store did not answer")

    monkeypatch.setattr(a._records, "put", second_write_fails)
    if delete_fails:
        monkeypatch.setattr(a._records, "delete", store_down)
    s = spec()
    with pytest.raises(StoreUnavailable):
        await a.adopt("rsv-13", s)
    assert fake_cloud_run_jobs.execution(name).get("cancelledCount") == 1
    assert (await b._records.get(SESSION + s.session_id) is None) is not delete_fails
    assert await b.status(s.session_id) is None  # no session's execution: the claim never stood
    launched = await a.launch(s)
    assert launched.created and launched.machine.machine_id != name
    found = await b.status(s.session_id)
    assert found is not None and found.machine_id == launched.machine.machine_id


async def test_a_claim_stands_once_its_records_are_written_whatever_the_store_answers_next(
    replicas: tuple[CloudRunWarmMachines, CloudRunWarmMachines], fake_cloud_run_jobs: FakeCloudRunJobs,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both claim records are written, then the store stops answering reads: the claim is the session's
    (its execution runs as the session's at every replica), so adopt says so rather than fail."""
    a, b = replicas
    name = await started_idle(a, fake_cloud_run_jobs, "rsv-14")
    get = a._records.get

    async def store_down(*args: object) -> None:
        raise StoreUnavailable("the store did not answer")

    monkeypatch.setattr(a._records, "get", store_down)
    s = dataclasses.replace(spec(), transport="webrtc")
    adopted = await a.adopt("rsv-14", s)
    assert adopted.claimed and adopted.machine.machine_id == name
    assert (adopted.machine.session_id, adopted.machine.body_digest, adopted.machine.transport) == (
        s.session_id, s.body_digest, "webrtc")
    monkeypatch.setattr(a._records, "get", get)
    found = await b.status(s.session_id)
    assert found is not None and found.machine_id == name and found.session_id == s.session_id


async def test_a_reserve_bots_hello_needs_its_own_executions_token(
    replicas: tuple[CloudRunWarmMachines, CloudRunWarmMachines], fake_cloud_run_jobs: FakeCloudRunJobs
) -> None:
    fake = fake_cloud_run_jobs
    a, _ = replicas
    mine, other = await started_idle(a, fake, "rsv-4"), await started_idle(a, fake, "rsv-5")
    grant = BotGrant("idle", "rsv-4", 2**31)
    own = Hello(machine_id="rsv-4", identity=await bot_token(fake, mine))
    assert await a.identity.refusal(grant, own) is None
    stolen = Hello(machine_id="rsv-4", identity=await bot_token(fake, other))  # rsv-5's bot, rsv-4's credential
    assert "nonce" in str(await a.identity.refusal(grant, stolen))
    fake.set_state(mine, "cancelled")
    assert "no running execution" in str(await a.identity.refusal(grant, own))


async def test_a_claimed_bots_idle_hello_is_refused_by_its_claim(
    replicas: tuple[CloudRunWarmMachines, CloudRunWarmMachines], fake_cloud_run_jobs: FakeCloudRunJobs
) -> None:
    """Once claimed, a bot's hello names its session: an idle one (naming none) is refused by the claim in
    the store at either replica, not left to the one-use record of tokens (which a store down lets pass)."""
    fake = fake_cloud_run_jobs
    a, b = replicas
    name = await started_idle(a, fake, "rsv-15")
    s = spec()
    await a.adopt("rsv-15", s)
    grant = BotGrant("idle", "rsv-15", 2**31)
    for machines in (a, b):
        idle = Hello(machine_id="rsv-15", identity=await bot_token(fake, name))
        assert "no running execution" in str(await machines.identity.refusal(grant, idle))
        claimed = Hello(machine_id="rsv-15", session_id=s.session_id, identity=await bot_token(fake, name))
        assert await machines.identity.refusal(grant, claimed) is None
