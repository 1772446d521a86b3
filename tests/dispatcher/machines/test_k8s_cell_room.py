"""A Kubernetes cell's room (K8S_CELLS' `max_pods`), against two fake API servers: a pod being deleted holds
its place, as the namespace's ResourceQuota charges it until it is gone, so a replica that lists the cell
meanwhile sends no start into a create the quota refuses.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.test_k8s_cells import cells_env, creates, replica, spec, views
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
