"""JSON logs and the trace collector on the k8s machines: every bot a dispatcher starts (a session's pod, a reserve's
idle one, a pod in a cell of several) is told the log format and the collector the dispatcher has, as the stacks'
other clouds tell theirs; the collector's headers, a key, never reach a pod's spec (the bots' Secret holds them)."""

from __future__ import annotations

import json

import pytest

from dispatcher.machines.k8s.cells import K8sCellMachines
from dispatcher.machines.k8s.settings import K8sSettings
from dispatcher.settings import SettingsError
from dispatcher.store.local import LocalCoordination
from tests.dispatcher.machines.test_k8s import env
from tests.dispatcher.machines.test_k8s_cells import cells_env, replica
from tests.dispatcher.machines.test_k8s_cells import spec as cell_spec
from tests.dispatcher.machines.test_k8s_model_service import container_env, reserve_pod_env, session_pod_env
from tests.fakes.k8s import FakeKubernetes
from tests.support.cells import homed_in

ENDPOINT = "https://otlp.example.com"
TRACED = {"LOG_FORMAT": "json", "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}
NAMES = ("LOG_FORMAT", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
         "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
# The traces' own variables, which win over the general ones in the dispatcher: its bots' spans go where its go.
TRACES_OWN = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://traces.example.com/v1/traces",
              "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}
HEADERS = "api-key=SENTINEL-otlp-headers-5c1d"


def told(pod_env: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in pod_env.items() if name in NAMES}


@pytest.mark.parametrize(("given", "expected"), [
    (TRACED, TRACED),
    ({**TRACED, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, {**TRACED, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}),
    ({**TRACED, **TRACES_OWN}, {**TRACED, **TRACES_OWN}),
    # A dispatcher logging text tells nothing: a bot's default is text, and its pods stay as they were.
    ({"LOG_FORMAT": "text"}, {}),
    ({}, {}),
])
async def test_a_session_pod_is_told_the_dispatchers_log_format_and_collector(
        fake_k8s: FakeKubernetes, given: dict[str, str], expected: dict[str, str]) -> None:
    assert told(await session_pod_env(fake_k8s, **given)) == expected


async def test_the_collectors_headers_never_reach_a_pods_spec(fake_k8s: FakeKubernetes) -> None:
    assert told(await session_pod_env(fake_k8s, **TRACED, OTEL_EXPORTER_OTLP_HEADERS=HEADERS)) == TRACED
    [create] = fake_k8s.calls_to("POST", "/pods")
    assert "SENTINEL" not in json.dumps(create.json())


async def test_a_reserve_pod_is_told_them_too(fake_k8s: FakeKubernetes) -> None:
    assert told(await reserve_pod_env(fake_k8s, **TRACED)) == TRACED


async def test_a_pod_in_each_cell_is_told_them_too(fake_k8s: FakeKubernetes, fake_k8s_cell: FakeKubernetes) -> None:
    machines: K8sCellMachines = replica({**cells_env(fake_k8s, fake_k8s_cell), **TRACED}, LocalCoordination())
    try:
        for name in ("a", "b"):
            [session] = homed_in(machines, name)
            await machines.launch(cell_spec(session))
    finally:
        await machines.aclose()
    assert told(container_env(fake_k8s)) == told(container_env(fake_k8s_cell)) == TRACED


def test_a_log_format_the_dispatcher_cannot_read_is_refused_naming_it(fake_k8s: FakeKubernetes) -> None:
    with pytest.raises(SettingsError, match="LOG_FORMAT='jsonl' is not one of text, json"):
        K8sSettings.from_env(env(fake_k8s, LOG_FORMAT="jsonl"))



@pytest.mark.parametrize("name", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])
def test_an_endpoint_with_a_password_in_it_is_refused_naming_the_headers_instead(fake_k8s: FakeKubernetes,
                                                                                 name: str) -> None:
    """Every bot pod's spec would hold it in plain, for whoever may `get` pods to read."""
    with pytest.raises(SettingsError, match="OTEL_EXPORTER_OTLP_HEADERS") as refused:
        K8sSettings.from_env(env(fake_k8s, **{name: "https://user:SENTINEL-otlp-password@otlp.example.com:443"}))
    assert name in str(refused.value) and "otlp.example.com:443" in str(refused.value)
    assert "SENTINEL" not in str(refused.value)
