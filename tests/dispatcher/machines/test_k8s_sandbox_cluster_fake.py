"""The opt-in real-cluster tests of the `agent-sandbox` mode (test_k8s_sandbox_cluster.py), run against the fake
API server and its controller with a stand-in kubelet that runs each pod it sees pending: they cannot
rot unnoticed between runs on a real cluster, and the fake answers them as a cluster would."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import pytest

from dispatcher.machines.k8s.sandbox import SandboxClaims
from tests.dispatcher.machines import test_k8s_sandbox_cluster as on_a_cluster
from tests.dispatcher.machines.test_k8s_sandbox import add_pool, env
from tests.dispatcher.machines.test_k8s_sandbox_releases import CANARY, add_release_pool
from tests.fakes.k8s_sandbox import FakeAgentSandbox


async def kubelet(fake: FakeAgentSandbox) -> None:
    """Run every pending pod, as a node would once its image is pulled."""
    while True:
        with fake._pods_lock:
            pending = [name for name, pod in fake.pods.items()
                       if (pod.get("status") or {}).get("phase") in (None, "Pending")]
            for name in pending:
                fake.set_phase(name, "Running")
        await asyncio.sleep(0.05)


@pytest.fixture
async def cluster(fake_k8s_sandbox: FakeAgentSandbox, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SandboxClaims]:
    for name, value in env(fake_k8s_sandbox).items():
        monkeypatch.setenv(name, value)
    add_pool(fake_k8s_sandbox, 1)
    add_release_pool(fake_k8s_sandbox, CANARY, 1)  # as a stack with a release beside the default makes it
    running = asyncio.create_task(kubelet(fake_k8s_sandbox))
    machines = SandboxClaims.from_env(dict(os.environ))
    yield machines
    for session_id in on_a_cluster.STARTED:  # as the real fixture does: whatever failed, no claim left
        await machines.stop(session_id)
    on_a_cluster.STARTED.clear()
    await machines.aclose()
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running


async def test_the_start_up_checks_pass(cluster: SandboxClaims) -> None:
    await on_a_cluster.test_the_cluster_passes_the_modes_start_up_checks()


async def test_a_claim_is_bound_watched_listed_and_stopped(cluster: SandboxClaims) -> None:
    await on_a_cluster.test_a_claim_is_bound_watched_listed_and_stopped_with_its_pod(cluster)


async def test_the_pools_scale_is_read_and_written(cluster: SandboxClaims) -> None:
    await on_a_cluster.test_the_pools_scale_is_read_and_written(cluster)


async def test_a_release_checks_out_from_its_own_pool(cluster: SandboxClaims, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K8S_TEST_RELEASE", CANARY)
    await on_a_cluster.test_a_release_checks_out_from_its_own_pool_and_nothing_secret_is_in_the_cluster(cluster)
