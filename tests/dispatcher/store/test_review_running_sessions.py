"""Hostile review of the running sessions kept for admission (dispatcher/store/running_sessions.py,
launches.py, sessions/service.py), on a real redis-server: where the kept set drifts from what runs,
so that admission lets more sessions run than the cap, or refuses below it."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis

from dispatcher.errors import ApiError
from dispatcher.machines.base import LaunchResult, LaunchSpec, Machine, MachineState, WaitTimeout
from dispatcher.machines.cells import PartialListing
from dispatcher.observability.metrics import Metrics
from dispatcher.sessions.service import SessionService
from dispatcher.sessions.timeline import SessionTimeline
from dispatcher.settings import Settings
from dispatcher.store.redis_coordination import RedisCoordination
from dispatcher.store.running_sessions import RECONCILE_SECONDS
from tests.dispatcher.sessions.test_reaper_retries import ListedMachines


def running_machine(session_id: str) -> Machine:
    return Machine(session_id=session_id, machine_id=f"m-{session_id}", state=MachineState.STARTED,
                   created_at=time.time())


async def reconcile_due(admin: Redis, prefix: str) -> None:
    """The last reconcile was RECONCILE_SECONDS ago (the store's clock moved on)."""
    seconds, micros = await admin.time()
    await admin.set(f"{prefix}launches:running:reconciled",
                    seconds * 1_000_000 + micros - int((RECONCILE_SECONDS + 1) * 1_000_000))


async def running(admin: Redis, prefix: str) -> set[str]:
    return {str(member) for member in await admin.zrange(f"{prefix}launches:running", 0, -1)}


async def test_a_cell_that_does_not_answer_keeps_its_sessions_counted(
        replica_pair: tuple[RedisCoordination, RedisCoordination], admin: Redis, prefix: str) -> None:
    a, _ = replica_pair
    machines = ListedMachines([running_machine("s-cell-a"), running_machine("s-cell-b")])
    service = SessionService(Settings(), machines, None, Metrics("memory"), coordination=a,
                             timeline=SessionTimeline(a.timelines, a.replica_id))
    launches = a.launches(keep_seconds=10.0)
    try:
        await launches.recount(service.active_count, 0.0, service.active_sessions)  # as Admission wires it
        assert await running(admin, prefix) == {"s-cell-a", "s-cell-b"}
        # Cell b's API times out: CellLaunches.list answers with what cell a holds, marked partial
        # ("nothing may be judged gone for want of it", dispatcher/machines/cells.py).
        partial = PartialListing([running_machine("s-cell-a")], missing=("b",))
        machines.list = lambda: _answer(partial)  # type: ignore[method-assign]
        await reconcile_due(admin, prefix)
        await launches.recount(service.active_count, 0.0, service.active_sessions)
        assert "s-cell-b" in await running(admin, prefix)  # it still runs: cell b only did not answer
    finally:
        await service.aclose()


async def _answer(machines: list[Machine]) -> list[Machine]:
    return machines


async def test_a_previous_version_replicas_landed_launch_is_counted(
        replica_pair: tuple[RedisCoordination, RedisCoordination], admin: Redis, prefix: str) -> None:
    a, b = replica_pair
    new = a.launches(keep_seconds=10.0)
    active = {"s-1"}

    async def sessions() -> set[str]:
        return set(active)

    async def count() -> int:
        return len(active)

    await new.recount(count, 0.0, sessions)  # the reconcile: {s-1}
    # A replica of the previous version admits and lands one launch: its count is the provider's, and
    # its landing moves the launch's record only (no session named: bc79741d's `_LANDED`).
    old = b.launches(keep_seconds=10.0)
    await old.recount(count, 0.0)
    async with old.slot(10):
        active.add("s-old")
    await new.recount(count, 0.0, sessions)
    assert new.current() == 2  # s-1 and s-old both run


async def test_a_session_ended_after_the_list_is_not_brought_back_by_the_reconcile(
        replica_pair: tuple[RedisCoordination, RedisCoordination], admin: Redis, prefix: str) -> None:
    a, _ = replica_pair
    launches = a.launches(keep_seconds=10.0)
    active = {"s-1", "s-2"}
    ending: list[str] = []

    async def sessions() -> set[str]:
        listed = set(active)
        for session_id in ending:  # its end is written while the provider's list is on its way
            active.discard(session_id)
            await launches.ended(session_id)
        return listed

    async def count() -> int:
        return len(await sessions())

    await launches.recount(count, 0.0, sessions)
    assert await running(admin, prefix) == {"s-1", "s-2"}
    ending.append("s-2")
    await reconcile_due(admin, prefix)
    await launches.recount(count, 0.0, sessions)
    assert await running(admin, prefix) == {"s-1"}


class SlowStartMachines(ListedMachines):
    """A provider whose machines are still starting when `?wait=started` gives up (a slow cold start
    under load): the wait answers 504 `start_timeout` ("it may still start"), the machine runs on."""

    async def launch(self, spec: LaunchSpec) -> LaunchResult:
        machine = Machine(session_id=spec.session_id, machine_id=f"m-{spec.session_id}",
                          state=MachineState.STARTING, created_at=time.time())
        self.machines.append(machine)
        return LaunchResult(machine=machine, created=True)

    async def wait_started(self, session_id: str, timeout: float) -> Machine:
        raise WaitTimeout(session_id, timeout)


async def test_a_start_whose_wait_times_out_still_counts_while_its_machine_starts(
        replica_pair: tuple[RedisCoordination, RedisCoordination], admin: Redis, prefix: str) -> None:
    a, _ = replica_pair
    machines = SlowStartMachines([])
    service = SessionService(Settings(start_wait_seconds=0.01), machines, None, Metrics("memory"),
                             coordination=a, timeline=SessionTimeline(a.timelines, a.replica_id))
    try:
        with pytest.raises(ApiError) as timed_out:
            await service.start(caller="caller-key", idempotency_key="slow-1", body={}, wait=True)
        assert timed_out.value.code == "start_timeout"
        assert [m.state for m in machines.machines] == [MachineState.STARTING]  # it may still start
        await service.aclose()  # its background work (the end told to the kept set) is done
        assert await running(admin, prefix) == {machines.machines[0].session_id}
    finally:
        await service.aclose()
