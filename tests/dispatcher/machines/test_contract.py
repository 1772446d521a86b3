"""The machines contract, once for every provider (`harness` is parametrized in conftest.py),
each against its fake external API."""

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


def skip_unless_shared(harness: Harness) -> None:
    if not harness.replicas_share_machines:
        pytest.skip(f"{harness.name} machines belong to the one dispatcher process that launched them")


def skip_unless_throttled(harness: Harness) -> None:
    if not harness.can_throttle:
        pytest.skip(f"{harness.name} has no API that could throttle a launch")


def spec(session_id: str | None = None, digest: str = "d" * 32) -> LaunchSpec:
    return LaunchSpec(
        session_id=session_id or secrets.token_hex(12),
        body_digest=digest,
        max_session_seconds=600,
        body={"persona": "tester"},
        room_url="https://voicefleet-test.daily.co/vf-room",
        bot_token="bot.jwt.secret",
    )


async def test_launch_returns_a_new_machine_for_the_session(machines: Machines) -> None:
    s = spec()
    result = await machines.launch(s)
    assert result.created is True
    assert result.machine.session_id == s.session_id
    assert result.machine.state in (MachineState.STARTING, MachineState.STARTED)


async def test_launch_is_idempotent_on_the_session_id(machines: Machines) -> None:
    s = spec()
    first = await machines.launch(s)
    again = await machines.launch(s)
    assert again.created is False
    assert again.machine.machine_id == first.machine.machine_id
    assert [m.session_id for m in await machines.list()].count(s.session_id) == 1


async def test_another_replica_finds_the_machine_and_does_not_launch_twice(
    harness: Harness, machines: Machines
) -> None:
    skip_unless_shared(harness)
    s = spec()
    first = await machines.launch(s)
    replica = harness.make()
    try:
        found = await replica.status(s.session_id)
        again = await replica.launch(spec(s.session_id))  # a new bot token: different parameters
    finally:
        await replica.aclose()
    assert found is not None and found.machine_id == first.machine.machine_id
    assert again.created is False and again.machine.machine_id == first.machine.machine_id


async def test_body_digest_is_recorded_on_the_machine(harness: Harness, machines: Machines) -> None:
    s = spec(digest="0123456789abcdef0123456789abcdef")
    await machines.launch(s)
    replica = harness.make() if harness.replicas_share_machines else machines
    try:
        machine = await replica.status(s.session_id)
    finally:
        if replica is not machines:
            await replica.aclose()
    assert machine is not None and machine.body_digest == s.body_digest


async def test_status_of_an_unknown_session_is_none(machines: Machines) -> None:
    assert await machines.status(secrets.token_hex(12)) is None


async def test_status_follows_the_provider(harness: Harness, machines: Machines) -> None:
    s = spec()
    await machines.launch(s)
    seen = []
    for state in ("starting", "started", "ended"):
        await harness.move(s.session_id, state)
        machine = await machines.status(s.session_id)
        assert machine is not None
        seen.append(machine.state)
    assert seen == [MachineState.STARTING, MachineState.STARTED, MachineState.ENDED]


async def test_a_bot_that_exits_with_an_error_is_failed(harness: Harness, machines: Machines) -> None:
    if harness.name == "gce":
        pytest.skip("a VM reports no exit code; GCE failures are failed inserts (test_gce.py)")
    s = spec()
    await machines.launch(s)
    await harness.move(s.session_id, "failed")
    machine = await machines.status(s.session_id)
    assert machine is not None and machine.state is MachineState.FAILED
    assert machine.detail == "exit code 3"


async def test_wait_started_returns_once_the_machine_runs(harness: Harness, machines: Machines) -> None:
    s = spec()
    await machines.launch(s)
    await harness.move(s.session_id, "starting")

    async def boot() -> None:
        await asyncio.sleep(0.3)
        await harness.move(s.session_id, "started")

    booting = asyncio.create_task(boot())
    machine = await machines.wait_started(s.session_id, timeout=60)  # a safety net: its deadline is tested below
    await booting
    assert machine.state is MachineState.STARTED


async def test_wait_started_gives_up_at_the_deadline(harness: Harness, machines: Machines) -> None:
    s = spec()
    await machines.launch(s)
    await harness.move(s.session_id, "starting")
    with pytest.raises(WaitTimeout):
        await machines.wait_started(s.session_id, timeout=0.5)


async def test_stop_ends_the_machine(harness: Harness, machines: Machines) -> None:
    s = spec()
    await machines.launch(s)
    await harness.move(s.session_id, "started")
    assert await machines.stop(s.session_id) is True
    machine = await machines.status(s.session_id)
    assert machine is None or machine.state is MachineState.ENDED


async def test_stop_of_an_unknown_session_is_false(machines: Machines) -> None:
    assert await machines.stop(secrets.token_hex(12)) is False


async def test_list_finds_every_launched_machine(machines: Machines) -> None:
    launched = {(await machines.launch(spec())).machine.session_id for _ in range(3)}
    listed = {m.session_id for m in await machines.list()}
    assert launched <= listed


async def test_throttled_launch_is_retried(harness: Harness, machines: Machines) -> None:
    skip_unless_throttled(harness)
    harness.throttle(2)
    result = await machines.launch(spec())
    assert result.created is True


async def test_persistent_throttling_is_reported_with_a_retry_hint(harness: Harness) -> None:
    skip_unless_throttled(harness)
    provider = harness.make()
    harness.throttle(1000)
    try:
        with pytest.raises(MachinesError) as caught:
            await provider.launch(spec())
    finally:
        await provider.aclose()
    assert caught.value.reason == f"{harness.name}_throttled"
    assert caught.value.retry_after is not None


async def test_permanent_launch_failure_is_reported_without_retry(harness: Harness, machines: Machines) -> None:
    harness.reject()
    with pytest.raises(MachinesError) as caught:
        await machines.launch(spec())
    assert caught.value.reason == f"{harness.name}_rejected"
    assert caught.value.retry_after is None
