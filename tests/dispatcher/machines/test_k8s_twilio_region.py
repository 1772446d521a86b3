"""TWILIO_REGION and TWILIO_EDGE on the k8s machines: every bot a dispatcher starts, a session's pod or a reserve's
idle one, is told the Twilio region the dispatcher has (a bot on Pipecat's runner hangs its call up at that
region's host); without them, none."""

from __future__ import annotations

import pytest

from tests.dispatcher.machines.test_k8s_model_service import reserve_pod_env, session_pod_env
from tests.fakes.k8s import FakeKubernetes

REGION = {"TWILIO_REGION": "ie1", "TWILIO_EDGE": "dublin"}


@pytest.mark.parametrize("given", [REGION, {}])
async def test_a_session_pod_is_told_the_region_the_dispatcher_has_and_none_without(
        fake_k8s: FakeKubernetes, given: dict[str, str]) -> None:
    pod_env = await session_pod_env(fake_k8s, **given)
    assert {name: value for name, value in pod_env.items() if name in REGION} == given


async def test_a_reserve_pod_is_told_it_too(fake_k8s: FakeKubernetes) -> None:
    pod_env = await reserve_pod_env(fake_k8s, **REGION)
    assert {name: pod_env[name] for name in REGION} == REGION
