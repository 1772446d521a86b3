"""A Kubernetes cell's room (K8S_CELLS' `max_pods`), against two fake API servers: a pod being deleted holds
its place, as the namespace's ResourceQuota charges it until it is gone, so a replica that lists the cell
meanwhile sends no start into a create the quota refuses; and `max_pods: 0` closes a cell: no start goes
there, while a session already running there is still found and stopped in it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from dispatcher.machines.base import MachinesError
from dispatcher.machines.k8s.settings import K8sSettings
from dispatcher.outbound.provider_errors import as_api_error
from dispatcher.settings import SettingsError
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.test_k8s_cells import BASE, A, cell, cells_env, creates, listed, replica, spec, views
from tests.fakes.k8s import FakeKubernetes
from tests.support.cells import homed_in

# A bot that takes its time over SIGTERM (its goodbye): its pod, deleted, stays until the grace period ends.
STUBBORN = ("import signal, time; signal.signal(signal.SIGTERM, lambda *a: None); print('ready', flush=True); "
            "time.sleep(120)")


@pytest.fixture
def coordination() -> LocalCoordination:
    """The deployment's store, in this process: what every replica of a test shares."""
    return LocalCoordination()


def slow_goodbyes(fake: FakeKubernetes) -> None:
    """Each pod `fake` creates runs a bot that outlasts the test's grace period, as the kubelet runs it."""
    fake.launcher = lambda name, env: subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE)


async def saying_goodbye_slowly(fake: FakeKubernetes, pod: str) -> None:
    """Returns once the pod's bot takes SIGTERM as a goodbye (a SIGTERM before would end it at once)."""
    output = fake.processes[pod].stdout
    assert output is not None and await asyncio.to_thread(output.readline) == b"ready\n"


async def test_a_pod_being_deleted_holds_its_cells_room_until_it_is_gone(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes, coordination: LocalCoordination) -> None:
    """Cell a's quota and `max_pods` are 1. A session there is stopped: its bot is still saying goodbye, so the
    quota still charges its pod. Another replica lists the cells (the reaper's list) and counts it, so a start
    homed in a goes to b at once: no create is sent to a, and a is not drained by the quota's refusal."""
    slow_goodbyes(fake_k8s)
    fake_k8s.quota = 1
    env = cells_env(fake_k8s, fake_k8s_cell, a_extra={"max_pods": 1})
    machines, other = replica(env, coordination), replica(env, coordination)
    try:
        first, second = homed_in(machines, "a", 2)
        await machines.launch(spec(first))
        pod = f"vf-{first}"
        await saying_goodbye_slowly(fake_k8s, pod)
        assert await machines.stop(first)
        assert pod in fake_k8s.pods and pod not in fake_k8s.standing()  # being deleted: its bot says goodbye
        await other.list()
        assert views(other)["a"].running == 1
        await other.launch(spec(second))
        assert f"vf-{second}" in fake_k8s_cell.pods and creates(fake_k8s) == 1
        assert views(other)["a"].drained_until is None
    finally:
        await machines.aclose()
        await other.aclose()


async def test_a_cell_with_max_pods_0_takes_no_start_and_its_running_sessions_end_there(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes, coordination: LocalCoordination) -> None:
    opened = replica(cells_env(fake_k8s, fake_k8s_cell), coordination)  # a replica of the settings before
    closed = replica(cells_env(fake_k8s, fake_k8s_cell, a_extra={"max_pods": 0}), coordination)
    try:
        running, homed = homed_in(opened, "a", 2)
        await opened.launch(spec(running))  # in a, before it was closed
        launched = await closed.launch(spec(homed))
        assert launched.created and f"vf-{homed}" in fake_k8s_cell.pods and creates(fake_k8s) == 1
        assert await coordination.key_holders.held(f"k8s-cell:{homed}") == "b"
        again = await closed.launch(spec(running))  # a replay meets its pod where it runs
        assert not again.created and set(fake_k8s.pods) == {f"vf-{running}"} and f"vf-{running}" not in \
            fake_k8s_cell.pods
        found = await closed.status(running)
        assert found is not None and found.machine_id == f"vf-{running}"
        assert running in {m.session_id for m in await closed.list()}
        assert views(closed)["a"].room == 0 and views(closed)["a"].running == 1
        assert await closed.stop(running) and f"vf-{running}" not in fake_k8s.standing()
        assert all(view.drained_until is None for view in closed.views())
    finally:
        await opened.aclose()
        await closed.aclose()


async def test_every_cell_closed_is_a_503_that_says_so(
        fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes, coordination: LocalCoordination) -> None:
    both = json.dumps([cell("a", fake_k8s, max_pods=0), cell("b", fake_k8s_cell, max_pods=0)])
    machines = replica({**cells_env(fake_k8s, fake_k8s_cell), "K8S_CELLS": both}, coordination)
    try:
        assert [view.room for view in machines.views()] == [0, 0]
        [session] = homed_in(machines, "b")
        with pytest.raises(MachinesError) as refused:
            await machines.launch(spec(session))
        answer = as_api_error(refused.value)
        assert (answer.status, refused.value.reason) == (503, "k8s_capacity")
        assert "every open cell is full (b closed, a closed)" in refused.value.message
        assert creates(fake_k8s) == creates(fake_k8s_cell) == 0
    finally:
        await machines.aclose()


def test_max_pods_0_is_read_as_a_closed_cell_and_below_it_refused_with_the_way_forward() -> None:
    assert K8sSettings.from_env({**BASE, "K8S_CELLS": listed({**A, "max_pods": 0})}).cells[0].max_pods == 0
    with pytest.raises(SettingsError, match="max_pods must be a whole number of at least 0 \\(0 closes the cell"):
        K8sSettings.from_env({**BASE, "K8S_CELLS": listed({**A, "max_pods": -1})})
