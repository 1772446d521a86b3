"""In the `pods` mode the admission policy pins a bot pod's `OTEL_*` env to the collector the stack gives the
dispatcher (stacks/k8s/bot_trace_env.py): a leaked dispatcher token cannot point the export, and the Secret's
headers with it, at a host of its own. Judged by the policy's own CEL (tests/infra/k8s/admission_cel.py) on the
pods the dispatcher of that `up` builds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from stacks.config.reader import SettingsError
from tests.infra.helpers import component_outputs
from tests.infra.k8s.admission_cel import refusal
from tests.infra.k8s.test_bot_pods_policy import DISPATCHER, container, created, dispatchers_pods, policy_of, up

ENDPOINT = "https://otlp.example.com"
ELSEWHERE = "https://collector.attacker.example"
LAST = {"botNamespace": "voicefleet-bots", "dispatcherNamespace": "voicefleet"}  # a last `up`'s outputs


def env_of(pod: dict[str, Any]) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = container(pod)["env"]
    return env


def endpoint(pod: dict[str, Any], value: str) -> None:
    """The pod's OTEL_EXPORTER_OTLP_ENDPOINT set to `value`, or added."""
    entries = [entry for entry in env_of(pod) if entry["name"] != "OTEL_EXPORTER_OTLP_ENDPOINT"]
    container(pod)["env"] = [*entries, {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": value}]


def added(name: str, value: str = ELSEWHERE) -> Callable[[dict[str, Any]], None]:
    return lambda pod: env_of(pod).append({"name": name, "value": value})


MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "another endpoint": lambda pod: endpoint(pod, ELSEWHERE),
    "the endpoint with another path": lambda pod: endpoint(pod, ENDPOINT + "/v1/traces/../../x"),
    # Each wins over the general one in the SDK, for its signal.
    "a traces endpoint": added("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
    "a metrics endpoint": added("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"),
    "a logs endpoint": added("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"),
    # A plain value wins over the Secret's (envFrom).
    "the headers in plain": added("OTEL_EXPORTER_OTLP_HEADERS", "api-key=x"),
    "an exporter of its choosing": added("OTEL_TRACES_EXPORTER", "zipkin"),
    # A name listed twice: the kubelet keeps the last.
    "the endpoint twice, the second elsewhere": lambda pod: env_of(pod).append(
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": ELSEWHERE}),
    # The pod's maker writes its own annotations: a fieldRef to one is a value of its choosing.
    "the endpoint from an annotation": lambda pod: env_of(pod).append(
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT",
         "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['x']"}}}),
}


def test_the_dispatchers_pods_told_the_stacks_collector_are_admitted() -> None:
    run = up(otelExporterOtlpEndpoint=ENDPOINT)
    pods = dispatchers_pods(run)
    assert all({"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": ENDPOINT} in env_of(pod) for pod in pods)
    assert all(refusal(policy_of(run), created(DISPATCHER, pod)) is None for pod in pods)
    for pod in pods:  # without it a pod exports nothing: nothing to pin
        container(pod)["env"] = [entry for entry in env_of(pod) if not entry["name"].startswith("OTEL_")]
        assert refusal(policy_of(run), created(DISPATCHER, pod)) is None


@pytest.mark.parametrize("traced", [True, False])
@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_an_otel_variable_the_dispatcher_does_not_set_is_refused(mutation: str, traced: bool) -> None:
    run = up(otelExporterOtlpEndpoint=ENDPOINT) if traced else up()
    for pod in dispatchers_pods(run):
        MUTATIONS[mutation](pod)
        message = str(refusal(policy_of(run), created(DISPATCHER, pod)))
        assert "OTEL_*" in message, mutation
        assert (f"OTEL_EXPORTER_OTLP_ENDPOINT: {ENDPOINT}" in message) is traced, message


def test_the_last_ups_collector_is_admitted_beside_this_ones_while_replicas_roll() -> None:
    """A pod an old replica makes after the policy's update still carries the last `up`'s collector; the `up`
    after it admits that one no more. A pod made before the change is never judged again."""
    first = up(otelExporterOtlpEndpoint=ENDPOINT)
    told = {"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}
    assert component_outputs(first, "k8s")["botTraceEnvironment"] == told  # what the next `up` reads back
    (session, _) = dispatchers_pods(first)
    moved = up({**LAST, "botTraceEnvironment": told}, otelExporterOtlpEndpoint=ELSEWHERE)
    assert refusal(policy_of(moved), created(DISPATCHER, session)) is None
    for pod in dispatchers_pods(moved):
        assert {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": ELSEWHERE} in env_of(pod)
        assert refusal(policy_of(moved), created(DISPATCHER, pod)) is None
    after = up({**LAST, "botTraceEnvironment": {"OTEL_EXPORTER_OTLP_ENDPOINT": ELSEWHERE}},
               otelExporterOtlpEndpoint=ELSEWHERE)
    assert "OTEL_*" in str(refusal(policy_of(after), created(DISPATCHER, session)))
    # Unset: the last `up`'s pods are admitted while it rolls, then none carries an OTEL_* variable.
    unset = up({**LAST, "botTraceEnvironment": told})
    assert refusal(policy_of(unset), created(DISPATCHER, session)) is None
    assert component_outputs(unset, "k8s")["botTraceEnvironment"] == {}
    assert "OTEL_*" in str(refusal(policy_of(up({**LAST, "botTraceEnvironment": {}})), created(DISPATCHER, session)))


def test_a_value_read_back_that_cel_cannot_hold_is_left_out() -> None:
    """An output edited by hand: left out, never written into the policy."""
    run = up({**LAST, "botTraceEnvironment": {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://x' || true || '"}})
    (session, _) = dispatchers_pods(run)
    endpoint(session, "https://x' || true || '")
    assert "OTEL_*" in str(refusal(policy_of(run), created(DISPATCHER, session)))


@pytest.mark.parametrize("character", ["'", "\\"])
def test_an_endpoint_the_policy_cannot_quote_is_refused_with_the_way_out(character: str) -> None:
    with pytest.raises(SettingsError, match="otelExporterOtlpEndpoint holds a quote or backslash") as refused:
        up(otelExporterOtlpEndpoint=f"https://otlp.example.com/a{character}b")
    assert "%27 and %5C" in str(refused.value)
