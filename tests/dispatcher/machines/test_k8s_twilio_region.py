"""TWILIO_REGION and TWILIO_EDGE on the k8s machines: every bot a dispatcher starts, a session's pod or a reserve's
idle one, is told the Twilio region the dispatcher has (a bot on Pipecat's runner hangs its call up at that
region's host); without them, none."""

from __future__ import annotations

import pytest

from dispatcher.machines.k8s.provider import K8sMachines
from dispatcher.machines.k8s.reserve import K8sWarmMachines
from tests.dispatcher.machines.test_k8s import env, spec
from tests.dispatcher.machines.test_k8s_model_service import container_env
from tests.fakes.k8s import FakeKubernetes

REGION = {"TWILIO_REGION": "ie1", "TWILIO_EDGE": "dublin"}


@pytest.mark.parametrize("given", [REGION, {}])
async def test_a_session_pod_is_told_the_region_the_dispatcher_has_and_none_without(
        fake_k8s: FakeKubernetes, given: dict[str, str]) -> None:
    machines = K8sMachines.from_env(env(fake_k8s, **given))
    try:
        await machines.launch(spec())
    finally:
        await machines.aclose()
    assert {name: value for name, value in container_env(fake_k8s).items() if name in REGION} == given


async def test_a_reserve_pod_is_told_it_too(fake_k8s: FakeKubernetes) -> None:
    machines = K8sWarmMachines.from_env(env(fake_k8s, **REGION), transport="webrtc", max_idle_seconds=900,
                                        max_session_seconds=600)
    try:
        await machines.launch_idle("b1", "t" * 40)
    finally:
        await machines.aclose()
    assert {name: container_env(fake_k8s)[name] for name in REGION} == REGION
