"""The machines contract, once for every provider (`harness` is parametrized in conftest.py),
each against its fake external API.

Three tests per provider, each over one provider and its fake (a fake's start, a local bot's process,
cost more than the calls each claim makes): what a launch finds and records; how a machine's state
follows the provider's through a wait, a stop and a failure; how a launch the provider refuses is
reported. Each claim has its own assert message."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from dispatcher.machines.base import LaunchSpec, Machines, MachinesError, MachineState, WaitTimeout
from tests.dispatcher.machines.conftest import PROVIDERS, harness_for
from tests.dispatcher.machines.harness import Harness, local_harness


@pytest.fixture(params=[*PROVIDERS, "cerebrium", "local"])
def harness(request: pytest.FixtureRequest, tmp_path, monkeypatch: pytest.MonkeyPatch) -> Harness:
    """Every provider, local included: local runs real bot processes (the signal-driven stand-in)."""
    if request.param != "local":
        return harness_for(request)
    monkeypatch.setenv("STANDIN_MODE", "controlled")
    monkeypatch.setenv("STANDIN_RECORD_DIR", str(tmp_path))
    return local_harness(tmp_path)


@pytest.fixture
async def machines(harness: Harness) -> AsyncIterator[Machines]:
    provider = harness.make()
    yield provider
    await provider.aclose()


def spec(session_id: str | None = None, digest: str = "d" * 32) -> LaunchSpec:
    return LaunchSpec(
        session_id=session_id or secrets.token_hex(12),
        body_digest=digest,
        max_session_seconds=600,
        body={"persona": "tester"},
        room_url="https://voicefleet-test.daily.co/vf-room",
        bot_token="bot.jwt.secret",
    )


async def test_a_launch_is_idempotent_on_its_session_recorded_with_its_digest_and_found_by_another_replica(
    harness: Harness, machines: Machines
) -> None:
    s = spec(digest="0123456789abcdef0123456789abcdef")
    first = await machines.launch(s)
    assert first.created is True, "a first launch did not create a machine"
    assert first.machine.session_id == s.session_id, first.machine
    assert first.machine.state in (MachineState.STARTING, MachineState.STARTED), first.machine
    again = await machines.launch(s)
    assert again.created is False and again.machine.machine_id == first.machine.machine_id, "a replay launched again"
    assert [m.session_id for m in await machines.list()].count(s.session_id) == 1, "a replay's machine listed twice"
    assert await machines.status(secrets.token_hex(12)) is None, "an unknown session has a status"
    assert await machines.stop(secrets.token_hex(12)) is False, "an unknown session was stopped"
    other = (await machines.launch(spec())).machine.session_id
    assert {s.session_id, other} <= {m.session_id for m in await machines.list()}, "a launched machine not listed"
    if not harness.replicas_share_machines:  # local: machines belong to the one process that launched them
        machine = await machines.status(s.session_id)
        assert machine is not None and machine.body_digest == s.body_digest, ("the body digest not recorded", machine)
        return
    replica = harness.make()
    try:
        found = await replica.status(s.session_id)
        replayed = await replica.launch(spec(s.session_id))  # a new bot token: different parameters
    finally:
        await replica.aclose()
    assert found is not None and found.machine_id == first.machine.machine_id, ("another replica's look", found)
    assert found.body_digest == s.body_digest, ("the body digest not recorded on the machine", found)
    assert replayed.created is False and replayed.machine.machine_id == first.machine.machine_id, \
        ("another replica launched twice", replayed)


async def test_a_machines_state_follows_the_provider_through_a_wait_a_stop_and_a_failure(
    harness: Harness, machines: Machines
) -> None:
    booted, stopped, failed = spec(), spec(), spec()
    await machines.launch(booted)
    seen = []
    for state in ("starting", "started", "ended"):
        await harness.move(booted.session_id, state)
        machine = await machines.status(booted.session_id)
        assert machine is not None, f"no status once {state}"
        seen.append(machine.state)
        if state == "starting":
            with pytest.raises(WaitTimeout):  # a wait gives up at its deadline
                await machines.wait_started(booted.session_id, timeout=0.5)

            async def boot() -> None:
                await asyncio.sleep(0.3)
                await harness.move(booted.session_id, "started")

            booting = asyncio.create_task(boot())
            waited = await machines.wait_started(booted.session_id, timeout=60)  # a safety net, not the claim
            await booting
            assert waited.state is MachineState.STARTED, ("a wait returned before the machine ran", waited)
    assert seen == [MachineState.STARTING, MachineState.STARTED, MachineState.ENDED], seen

    await machines.launch(stopped)
    await harness.move(stopped.session_id, "started")
    assert await machines.stop(stopped.session_id) is True, "a running machine's stop failed"
    machine = await machines.status(stopped.session_id)
    assert machine is None or machine.state is MachineState.ENDED, ("a stopped machine still runs", machine)

    if harness.name == "gce":
        return  # a VM reports no exit code; GCE failures are failed inserts (test_gce.py)
    await machines.launch(failed)
    await harness.move(failed.session_id, "failed")
    machine = await machines.status(failed.session_id)
    assert machine is not None and machine.state is MachineState.FAILED, ("a bot's error exit not failed", machine)
    assert machine.detail == "exit code 3", machine.detail


async def test_a_throttled_launch_is_retried_persistent_throttling_has_a_hint_and_a_refusal_none(
    harness: Harness, machines: Machines
) -> None:
    if harness.can_throttle:  # local has no API that could throttle a launch
        harness.throttle(2)
        assert (await machines.launch(spec())).created is True, "a throttled launch was not retried"
        provider = harness.make()  # a replica of its own: nothing of the earlier launch in it
        harness.throttle(1000)
        try:
            with pytest.raises(MachinesError) as throttled:
                await provider.launch(spec())
        finally:
            await provider.aclose()
        assert throttled.value.reason == f"{harness.name}_throttled", throttled.value
        assert throttled.value.retry_after is not None, "persistent throttling came without a retry hint"
        harness.recover()  # the throttling is over; what follows is a refusal for good
    harness.reject()
    with pytest.raises(MachinesError) as rejected:
        await machines.launch(spec())
    assert rejected.value.reason == f"{harness.name}_rejected", rejected.value
    assert rejected.value.retry_after is None, "a permanent failure was given a retry hint"
