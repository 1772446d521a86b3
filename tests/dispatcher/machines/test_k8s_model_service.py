"""MODEL_SERVICE_URL on the k8s machines: every bot a dispatcher starts, a session's pod or a reserve's idle
one, is told the model service it admits starts against (docs/converged.md, "On Kubernetes"); without it, none."""

from __future__ import annotations

from dispatcher.machines.k8s.provider import K8sMachines
from dispatcher.machines.k8s.reserve import K8sWarmMachines
from tests.dispatcher.machines.test_k8s import env, spec
from tests.fakes.k8s import FakeKubernetes

URL = "http://voicefleet-model.voicefleet-model.svc:8998"


def container_env(fake: FakeKubernetes) -> dict[str, str]:
    [create] = fake.calls_to("POST", "/pods")
    [container] = create.json()["spec"]["containers"]
    return {entry["name"]: entry["value"] for entry in container["env"]}


async def session_pod_env(fake: FakeKubernetes, **given: str) -> dict[str, str]:
    """The env of the session's pod a dispatcher of `given` settings creates for one launch."""
    machines = K8sMachines.from_env(env(fake, **given))
    try:
        await machines.launch(spec())
    finally:
        await machines.aclose()
    return container_env(fake)


async def reserve_pod_env(fake: FakeKubernetes, **given: str) -> dict[str, str]:
    """The env of the idle pod a dispatcher of `given` settings creates for its reserve."""
    machines = K8sWarmMachines.from_env(env(fake, **given), transport="webrtc", max_idle_seconds=900,
                                        max_session_seconds=600)
    try:
        await machines.launch_idle("b1", "t" * 40)
    finally:
        await machines.aclose()
    return container_env(fake)


async def test_a_session_pod_is_told_the_model_service(fake_k8s: FakeKubernetes) -> None:
    # the base URL, as the dispatcher reads it
    assert (await session_pod_env(fake_k8s, MODEL_SERVICE_URL=URL + "/"))["MODEL_SERVICE_URL"] == URL


async def test_a_reserve_pod_is_told_it_too(fake_k8s: FakeKubernetes) -> None:
    assert (await reserve_pod_env(fake_k8s, MODEL_SERVICE_URL=URL))["MODEL_SERVICE_URL"] == URL


async def test_without_one_no_bot_is_told_any(fake_k8s: FakeKubernetes) -> None:
    assert "MODEL_SERVICE_URL" not in await session_pod_env(fake_k8s)
