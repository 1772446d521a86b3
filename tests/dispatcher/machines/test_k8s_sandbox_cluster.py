"""Opt-in (`-m k8s`, K8S_E2E=1, K8S_MODE=agent-sandbox): the `agent-sandbox` mode against a real cluster
with agent-sandbox installed, to hold the fake (tests/fakes/k8s_sandbox.py) to the real controller: the
start-up checks pass (served versions, the pool's `Recreate`), a session's claim is adopted or made cold,
watched to its start, holds a Sandbox whose pod carries the session's annotation, is listed, and is
deleted with its pod by a stop; the pool's `scale` is read and written back; with K8S_TEST_RELEASE (a release
the stack made a pool for), a session of that release checks out from its pool alone and the cluster holds
nothing secret of it. Set up as docs/testing.md ("A real cluster") says; skipped with the reason otherwise."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import AsyncIterator

import pytest

from dispatcher.machines.base import LaunchSpec, MachineState
from dispatcher.machines.k8s.claims import NOTE_SESSION, bound_sandbox
from dispatcher.machines.k8s.sandbox import SandboxClaims
from dispatcher.machines.k8s.served import cluster_problems
from tests.support.waiting import until

NEEDED = ("K8S_API_URL", "K8S_TOKEN_FILE", "K8S_NAMESPACE", "BOT_IMAGE", "K8S_WARM_POOL")
pytestmark = [
    pytest.mark.k8s,
    pytest.mark.timeout(900),  # past START_SECONDS and the claim's foreground delete
    pytest.mark.skipif(os.environ.get("K8S_E2E") != "1" or os.environ.get("K8S_MODE") != "agent-sandbox"
                       or not all(os.environ.get(n) for n in NEEDED),
                       reason="a real cluster with agent-sandbox: K8S_E2E=1 K8S_MODE=agent-sandbox with "
                              + ", ".join(NEEDED) + " (docs/testing.md)"),
]
START_SECONDS = 300.0  # an image pull on a fresh kind node, when no warm Sandbox is there
STARTED: list[str] = []


@pytest.fixture
async def cluster() -> AsyncIterator[SandboxClaims]:
    machines = SandboxClaims.from_env(dict(os.environ))
    yield machines
    for session_id in STARTED:  # this test's claims only, whatever failed
        await machines.stop(session_id)
    STARTED.clear()
    await machines.aclose()


def session_spec(**fields: object) -> LaunchSpec:
    """A session whose claim is recognisably a test's (`vf-test-…`), in a namespace others may share."""
    s = LaunchSpec(session_id="test-" + secrets.token_hex(10), body_digest="d" * 32, max_session_seconds=120,
                   **fields)  # type: ignore[arg-type]
    STARTED.append(s.session_id)
    return s


async def test_the_cluster_passes_the_modes_start_up_checks() -> None:
    assert await cluster_problems(dict(os.environ)) == []


async def test_a_claim_is_bound_watched_listed_and_stopped_with_its_pod(cluster: SandboxClaims) -> None:
    s = session_spec()
    launched = await cluster.launch(s)
    assert launched.created
    machine = await cluster.wait_started(s.session_id, START_SECONDS)
    assert machine.state is not MachineState.STARTING, machine
    claim = await cluster.read_claim(s.session_id)
    assert claim is not None and (sandbox := bound_sandbox(claim)), claim

    async def annotated() -> bool:
        """The controller names the session on an adopted pod after it binds the claim, in a write of its
        own: a reader between the two sees the pod without it (a busy fake, or a real cluster)."""
        pod = await cluster.read_pod(sandbox)
        return pod is not None and (pod["metadata"].get("annotations") or {}).get(NOTE_SESSION) == s.session_id

    await until(annotated, "the session's pod annotated with its session", timeout=START_SECONDS)
    assert s.session_id in {m.session_id for m in await cluster.list()}
    assert await cluster.stop(s.session_id)

    async def gone() -> bool:
        return await cluster.read_claim(s.session_id) is None and await cluster.read_pod(sandbox) is None

    await until(gone, "the claim and its pod gone", timeout=180)


async def test_the_pools_scale_is_read_and_written(cluster: SandboxClaims) -> None:
    size = await cluster.pool_size("default")
    await cluster.scale_pool("default", size)  # the same size back: the write is allowed and changes nothing
    assert await cluster.pool_size("default") == size


# What a start hands the dispatcher that is secret: none of it may reach a claim, a pod or a Sandbox.
SESSION_SECRETS = {"channel": "chan-" + "c" * 40, "daily": "daily-" + "d" * 40, "turn": "turn-" + "t" * 40,
                   "room": "https://team.daily.co/room-" + "r" * 12, "caller": "caller-data-" + "k" * 20}


@pytest.mark.skipif(not os.environ.get("K8S_TEST_RELEASE"),
                    reason="K8S_TEST_RELEASE: a release the stack made a pool for (docs/testing.md)")
async def test_a_release_checks_out_from_its_own_pool_and_nothing_secret_is_in_the_cluster(
        cluster: SandboxClaims) -> None:
    release = os.environ["K8S_TEST_RELEASE"]
    s = session_spec(release=release, channel_token=SESSION_SECRETS["channel"], bot_token=SESSION_SECRETS["daily"],
                     room_url=SESSION_SECRETS["room"], body={"apiKey": SESSION_SECRETS["caller"]},
                     ice_config={"iceServers": [{"urls": ["turn:turn.example:3478"], "username": "u",
                                                 "credential": SESSION_SECRETS["turn"]}]})
    await cluster.launch(s)
    await cluster.wait_started(s.session_id, START_SECONDS)
    claim = await cluster.read_claim(s.session_id)
    assert claim is not None and (sandbox := bound_sandbox(claim)), claim
    assert claim["metadata"]["labels"]["voicefleet.io/release"] == release
    assert claim["spec"]["warmPoolRef"] == {"name": await cluster.pools.pool_of(release)}
    pod = await cluster.read_pod(sandbox)
    assert pod is not None
    held = json.dumps([claim, pod])
    assert [what for what, value in SESSION_SECRETS.items() if value in held] == []
    env_names = {e["name"] for c in pod["spec"]["containers"] for e in c.get("env") or []}
    assert not env_names & {"BOT_CHANNEL_TOKEN", "DAILY_TOKEN"}, env_names
