"""Opt-in (`-m k8s`, K8S_E2E=1): the `pods` mode against a real API server (kind, k3d, any cluster), to hold
the fake (tests/fakes/k8s.py, k8s_watch.py) to what the real one does: the pod's body accepted under Pod
Security `restricted` and strict field validation, an unknown field refused, the start seen by a watch,
the reaper's list, a stop. Set up as docs/testing.md ("A real cluster") says; skipped with the reason
otherwise."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator

import pytest

from dispatcher.machines.base import LaunchSpec, MachineState
from dispatcher.machines.k8s.pods import pod_body
from dispatcher.machines.k8s.provider import STRICT, K8sMachines
from tests.support.waiting import until

NEEDED = ("K8S_API_URL", "K8S_TOKEN_FILE", "K8S_NAMESPACE", "BOT_IMAGE")
pytestmark = [
    pytest.mark.k8s,
    pytest.mark.timeout(900),  # past START_SECONDS and the stop's grace
    pytest.mark.skipif(os.environ.get("K8S_E2E") != "1" or not all(os.environ.get(n) for n in NEEDED),
                       reason="a real cluster: K8S_E2E=1 with " + ", ".join(NEEDED) + " (docs/testing.md)"),
]
START_SECONDS = 300.0  # an image pull on a fresh kind node


@pytest.fixture
async def cluster() -> AsyncIterator[K8sMachines]:
    machines = K8sMachines.from_env(dict(os.environ))
    yield machines
    for name in [n for n in CREATED if n.startswith("vf-test-")]:  # this test's pods only, whatever failed
        await machines.delete_pod(name)
    CREATED.clear()
    await machines.aclose()


CREATED: list[str] = []


def session_spec() -> LaunchSpec:
    """A session whose pod is recognisably a test's (`vf-test-…`), in a namespace others may share."""
    s = LaunchSpec(session_id="test-" + secrets.token_hex(10), body_digest="d" * 32, max_session_seconds=120)
    CREATED.append(f"vf-{s.session_id}")
    return s


async def test_a_pod_is_accepted_watched_to_its_start_listed_and_stopped(cluster: K8sMachines) -> None:
    s = session_spec()
    launched = await cluster.launch(s)
    assert launched.created and launched.machine.machine_id == f"vf-{s.session_id}"
    machine = await cluster.wait_started(s.session_id, START_SECONDS)
    # Without a channel the bot may exit at once: whatever it did, the watch saw the pod leave Pending.
    assert machine.state is not MachineState.STARTING, machine
    assert s.session_id in {m.session_id for m in await cluster.list()}
    assert await cluster.stop(s.session_id)
    await until(lambda: _gone_or_ended(cluster, s.session_id), "the pod gone or ended", timeout=120)


async def test_an_unknown_field_is_refused_as_the_fake_refuses_it(cluster: K8sMachines) -> None:
    name = f"vf-test-{secrets.token_hex(6)}"
    CREATED.append(name)  # deleted after, should the API server take it
    body = pod_body(cluster.settings, name, image=cluster.bot_image, env={}, labels={},
                    annotations={}, deadline_seconds=60)
    body["spec"]["noSuchField"] = True
    response = await cluster.api.request("POST", json=body, params=STRICT)
    assert response.status_code == 400 and "strict decoding error" in response.text


async def _gone_or_ended(cluster: K8sMachines, session_id: str) -> bool:
    machine = await cluster.status(session_id)
    return machine is None or not machine.state.is_active
