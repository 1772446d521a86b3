"""The warm reserve's place in a Kubernetes cell's room (K8S_CELLS), against two fake API servers: a retirement
counts its idle pod out of the cell only when it deleted it (one claimed meanwhile by another replica still
holds the room, one gone was counted out by the listing that missed it); an idle pod being deleted holds
the room until it is gone; and a cell closed by `max_pods: 0` takes no refill, its idle pods are retired by
the sweep and their bots' hellos refused meanwhile.
"""

from __future__ import annotations

import pytest

from dispatcher.machines.k8s.cell_reserve import K8sCellWarmMachines
from dispatcher.outbound.ratelimit import Rate
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.test_contract import spec
from tests.dispatcher.machines.test_k8s_cell_reserve import (
    IDLE_PREFIX,
    grant,
    hello,
    idle_pods,
    other_replica,
    replica,
    reserve_env,
    views,
)
from tests.dispatcher.machines.test_k8s_cell_room import saying_goodbye_slowly, slow_goodbyes
from tests.fakes.k8s import FakeKubernetes


@pytest.fixture(autouse=True)
def slow_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each cell's bucket at 0.01/s with a burst of 4: a bucket's tokens are what the test spent."""
    monkeypatch.setattr("dispatcher.machines.k8s.cells.CREATE_RATE", Rate(per_second=0.01, burst=4, max_wait=2.0))


def room_of(machines: K8sCellWarmMachines, cell: str) -> int:
    """The cell's machines as this replica counts them against its room (sessions' and the reserve's)."""
    return {view.name: view.running for view in machines.views()}[cell]


async def idle_in(machines: K8sCellWarmMachines, fake: FakeKubernetes, cell: str, *bots: str) -> None:
    """Idle pods of `bots` in `cell`, as the reserve of any replica makes them, their bots running."""
    for bot_id in bots:
        await machines._warm[cell].run_idle(bot_id, "credential-" + bot_id)
        if fake.launcher is None:
            fake.set_phase(IDLE_PREFIX + bot_id, "Running")


async def test_a_retirement_counts_its_pod_out_of_the_cell_only_when_it_deleted_it(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes) -> None:
    env = reserve_env(fake_k8s, fake_k8s_cell)
    coordination = LocalCoordination()
    here, there = other_replica(env, coordination), other_replica(env, coordination)
    try:
        await idle_in(here, fake_k8s, "a", "rsv-kept", "rsv-also", "rsv-claimed", "rsv-gone")
        await here.idle_machines()  # here knows each bot's cell from its listing
        await there.adopt("rsv-claimed", spec())  # a session's pod now, at another replica
        await there.retire("rsv-gone")  # deleted there
        await here.idle_machines()  # the listings since: they count what runs
        await here.list()
        assert room_of(here, "a") == 3  # two idle pods and the claimed one
        await here.retire("rsv-gone")  # decided on an older listing: nothing left to delete
        assert room_of(here, "a") == 3
        await here.retire("rsv-claimed")  # a stale retirement: the session's pod is left, and still runs
        assert IDLE_PREFIX + "rsv-claimed" in fake_k8s.standing() and room_of(here, "a") == 3
        await here.retire("rsv-kept")  # deleted by this call: counted out at once
        assert IDLE_PREFIX + "rsv-kept" not in fake_k8s.standing() and room_of(here, "a") == 2
    finally:
        await here.aclose()
        await there.aclose()


async def test_an_idle_pod_being_deleted_holds_its_cells_room_until_it_is_gone(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes) -> None:
    """Its bot takes its time over SIGTERM: the quota charges its pod until it is gone, and so does the count."""
    slow_goodbyes(fake_k8s)
    env = reserve_env(fake_k8s, fake_k8s_cell)
    coordination = LocalCoordination()
    here, there = other_replica(env, coordination), other_replica(env, coordination)
    try:
        await idle_in(here, fake_k8s, "a", "rsv-leaving")
        await saying_goodbye_slowly(fake_k8s, IDLE_PREFIX + "rsv-leaving")
        await there.retire("rsv-leaving")
        assert IDLE_PREFIX + "rsv-leaving" in fake_k8s.pods and IDLE_PREFIX + "rsv-leaving" not in fake_k8s.standing()
        assert await here.idle_machines() == []  # retired already: not the reserve's
        assert room_of(here, "a") == 1
    finally:
        await here.aclose()
        await there.aclose()


async def test_a_closed_cell_takes_no_refill_and_its_idle_pods_are_retired_and_refused(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes) -> None:
    opened_env = reserve_env(fake_k8s, fake_k8s_cell)
    async with replica(reserve_env(fake_k8s, fake_k8s_cell, idle=2, a_extra={"max_pods": 0})) as (state, _):
        machines = state.machines
        assert isinstance(machines, K8sCellWarmMachines) and state.reserve is not None
        before = other_replica(opened_env, LocalCoordination())  # a replica of the settings before: a was open
        try:
            await idle_in(before, fake_k8s, "a", "rsv-closed")
        finally:
            await before.aclose()
        refused = await machines.identity.refusal(grant("rsv-closed"), hello(fake_k8s, "rsv-closed"))
        assert refused is not None and "cell a is closed (max_pods 0)" in refused, refused
        await state.reserve.refill()
        pods = idle_pods(fake_k8s, fake_k8s_cell)
        assert pods.pop("rsv-closed") == "a" and pods and set(pods.values()) == {"b"}
        assert len(fake_k8s.calls_to("POST", "/pods")) == 1  # the closed cell's one pod, made before: no refill
        assert await state.reserve.sweep() == 1  # listed as made at the epoch: retired at once
        assert IDLE_PREFIX + "rsv-closed" not in fake_k8s.standing()
        assert views(state)["a"].running == 0 and views(state)["a"].room == 0
