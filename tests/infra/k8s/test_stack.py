"""The k8s stack's resources and their key fields, under the mocks (stacks/k8s/)."""

from __future__ import annotations

import json

import pytest

from stacks.config.store import MESSAGE_SECRETS, URL_VARIABLE
from stacks.k8s.channel_tls import NOTE_CERTIFICATE
from stacks.k8s.dispatcher import grace_seconds
from stacks.shared import contract
from stacks.tools.mocks import Run, is_secret, unwrap
from tests.fakes.k8s import restricted_problem
from tests.infra.helpers import component_outputs
from tests.infra.k8s.conftest import ALL_SECRETS, K8sRunner, container_env, dispatcher_secret, pod_spec, spec

KUBERNETES = "kubernetes:"


def masked(value: object) -> object:
    """Inputs with every secret replaced by a mark: what the state and the plan show in plain."""
    if is_secret(value):
        return "[secret]"
    if isinstance(value, dict):
        return {key: masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [masked(item) for item in value]
    return value


def test_every_object_goes_through_one_provider_built_from_the_secret_kubeconfig(k8s: Run) -> None:
    (provider,) = k8s.of_type("pulumi:providers:kubernetes")
    assert is_secret(provider.inputs["kubeconfig"])
    assert "SENTINEL-kubeconfig" in unwrap(provider.inputs["kubeconfig"])
    objects = [r for r in k8s.registrations if r.type.startswith(KUBERNETES)]
    assert len(objects) >= 14
    assert {r.provider.rsplit("::", 1)[0] for r in objects} == {provider.urn}


def test_no_secret_value_is_anywhere_in_plain(k8s: Run) -> None:
    values = [part for value in ALL_SECRETS.values() for part in value.split(",")]
    shown = [(r.type, r.name) for r in k8s.registrations for value in values
             if value in json.dumps(masked(r.inputs), default=str)]
    assert shown == []
    # …and every one of them reaches the dispatcher's Secret but the kubeconfig, which only the provider holds.
    secret = unwrap(dispatcher_secret(k8s).inputs)["stringData"]
    held = json.dumps(secret)
    assert [k for k, v in ALL_SECRETS.items() if k != "voicefleet:k8sKubeconfig" and v not in held] == []
    assert "SENTINEL-kubeconfig" not in held


def test_the_dispatchers_secret_values_stay_marked_secret(k8s: Run) -> None:
    data = dispatcher_secret(k8s).inputs["stringData"]
    assert is_secret(data) or all(is_secret(value) for value in data.values())


def test_both_namespaces_enforce_restricted_and_the_bots_is_capped(k8s: Run) -> None:
    namespaces = {unwrap(r.inputs)["metadata"]["name"]: unwrap(r.inputs)["metadata"]["labels"]
                  for r in k8s.of_type("kubernetes:core/v1:Namespace")}
    assert set(namespaces) == {"voicefleet", "voicefleet-bots"}
    for namespace in namespaces:
        for mode in ("enforce", "audit", "warn"):
            assert namespaces[namespace][f"pod-security.kubernetes.io/{mode}"] == "restricted", namespace
    assert restricted_problem(pod_spec(k8s)) is None  # the dispatcher's pods meet it
    quota = unwrap(k8s.one("kubernetes:core/v1:ResourceQuota").inputs)
    assert quota["metadata"]["namespace"] == "voicefleet-bots"
    # 10 sessions (maxConcurrentSessions) and 10 idle bots (reserveMaxIdle), 1 core and 1 GiB each.
    assert quota["spec"]["hard"] == {"pods": "20", "requests.cpu": "20000m", "limits.cpu": "20000m",
                                     "requests.memory": "20480Mi", "limits.memory": "20480Mi"}


def test_the_dispatcher_runs_two_replicas_with_a_budget_and_a_grace_for_its_calls(k8s: Run) -> None:
    deployment = spec(k8s.one("kubernetes:apps/v1:Deployment"))
    assert deployment["replicas"] == 2
    assert deployment["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    selector = deployment["selector"]["matchLabels"]
    assert selector.items() <= deployment["template"]["metadata"]["labels"].items()
    budget = spec(k8s.one("kubernetes:policy/v1:PodDisruptionBudget"))
    # A crash-looping replica never holds a drain of the other one's node.
    assert budget == {"maxUnavailable": 1, "selector": {"matchLabels": selector},
                      "unhealthyPodEvictionPolicy": "AlwaysAllow"}
    pod = pod_spec(k8s)
    # The longest session (maxSessionSeconds 1800) is relayed to its end, and its start before it.
    assert pod["terminationGracePeriodSeconds"] == grace_seconds(1800) == 1860
    assert pod["serviceAccountName"] == "voicefleet-dispatcher"
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert "@sha256:" in container["image"]
    assert container["resources"]["requests"] == container["resources"]["limits"] == {"cpu": "500m",
                                                                                      "memory": "512Mi"}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": contract.DISPATCHER_PORT},  # probes stay here
                                  {"name": "channel", "containerPort": contract.DISPATCHER_CHANNEL_PORT}]


@pytest.mark.parametrize(("max_session", "kept"), [("1800", True), ("541", True), ("540", False), ("300", False)])
def test_a_grace_past_the_autoscalers_keeps_it_off_the_dispatchers_nodes(
        k8s_stack: K8sRunner, max_session: str, kept: bool) -> None:
    """The cluster autoscaler kills a pod 600 s after its SIGTERM on a scale-down (max-graceful-termination-sec),
    which would cut the calls a replica relays before their end."""
    template = spec(k8s_stack(maxSessionSeconds=max_session).one("kubernetes:apps/v1:Deployment"))["template"]
    annotations = {key: value for key, value in template["metadata"].get("annotations", {}).items()
                   if key != NOTE_CERTIFICATE}
    assert annotations == ({"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"} if kept else {})
    assert (grace_seconds(int(max_session)) > 600) is kept


def test_the_rollout_and_the_destroy_wait_outlast_a_replicas_drain(k8s: Run) -> None:
    deployment = k8s.one("kubernetes:apps/v1:Deployment")
    assert int(deployment.custom_timeouts["update"].removesuffix("s")) > grace_seconds(1800)
    # Deleted in the foreground: gone only once its pods are, each draining up to its grace.
    assert int(deployment.custom_timeouts["delete"].removesuffix("s")) > grace_seconds(1800)


def test_the_network_policies_outlive_the_dispatchers_pods_on_destroy(k8s: Run) -> None:
    deployment = k8s.one("kubernetes:apps/v1:Deployment")
    policies = {r.urn for r in k8s.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")}
    assert len(policies) == 2 and policies <= set(deployment.dependencies)


def test_the_environment_is_what_the_pods_provider_reads_and_secrets_come_by_reference(k8s: Run) -> None:
    env = container_env(k8s)
    plain = {name for name, entry in env.items() if "value" in entry}
    assert plain == {*contract.K8S_ENV, *contract.CHANNEL_ENV, *contract.K8S_CHANNEL_TLS_ENV}
    secret_name = unwrap(dispatcher_secret(k8s).outputs)["metadata"]["name"]
    by_reference = {name: entry["valueFrom"]["secretKeyRef"] for name, entry in env.items() if "valueFrom" in entry}
    expected = {*contract.DISPATCHER_SECRETS, *contract.CHANNEL_SECRETS, *MESSAGE_SECRETS, URL_VARIABLE}
    assert set(by_reference) == expected
    assert all(ref == {"name": secret_name, "key": name} for name, ref in by_reference.items())
    assert env["MACHINES"]["value"] == "k8s" and env["K8S_NAMESPACE"]["value"] == "voicefleet-bots"
    # Bots dial the dispatcher's Service inside the cluster, on the channel's own port (the policies let
    # them reach its pods' channel port), which the dispatcher serves the bots' routes on alone, over TLS.
    assert env["BOT_CHANNEL_URL"]["value"] == "wss://dispatcher.voicefleet.svc:8081/bots/channel"
    assert env["BOT_CHANNEL_PORT"]["value"] == "8081" and env["PORT"]["value"] == "8080"


def test_the_service_exposes_both_ports_and_the_ingress_routes_the_public_one_only(k8s_stack: K8sRunner) -> None:
    run = k8s_stack(k8sIngressClass="traefik", k8sTlsSecret="voice-tls")
    selector = spec(run.one("kubernetes:apps/v1:Deployment"))["selector"]["matchLabels"]
    service = spec(run.one("kubernetes:core/v1:Service"))
    assert service["type"] == "ClusterIP" and service["selector"] == selector
    assert service["ports"] == [{"name": "http", "port": 80, "targetPort": "http"},
                                {"name": "channel", "port": 8081, "targetPort": "channel"}]
    ingress = spec(run.one("kubernetes:networking.k8s.io/v1:Ingress"))
    assert ingress["ingressClassName"] == "traefik"
    assert ingress["tls"] == [{"hosts": ["voice.example.com"], "secretName": "voice-tls"}]
    (rule,) = ingress["rules"]
    assert rule["host"] == "voice.example.com"
    (path,) = rule["http"]["paths"]  # one path, to the public port: /bots/… is not routed from outside
    assert path["backend"] == {"service": {"name": "dispatcher", "port": {"name": "http"}}}
    assert "tls" not in spec(k8s_stack().one("kubernetes:networking.k8s.io/v1:Ingress"))


def test_the_outputs_name_the_dispatcher_and_its_namespaces(k8s: Run) -> None:
    outputs = component_outputs(k8s, "k8s")
    assert outputs["dispatcherUrl"] == "https://voice.example.com"
    assert outputs["botNamespace"] == "voicefleet-bots" and outputs["dispatcherNamespace"] == "voicefleet"
    assert outputs["machinesEnvironment"] == {"MACHINES": "k8s"}


def test_drain_scales_the_dispatcher_to_zero(k8s_stack: K8sRunner) -> None:
    assert spec(k8s_stack(drain="true").one("kubernetes:apps/v1:Deployment"))["replicas"] == 0


def test_the_bots_options_reach_the_provider(k8s_stack: K8sRunner) -> None:
    run = k8s_stack(k8sBotCpu="500m", k8sBotMemory="2Gi", k8sRuntimeClass="kata-qemu", k8sPodOverheadCpu="250m",
                    k8sPodOverheadMemory="160Mi", maxConcurrentSessions="4", reserveMaxIdle="2", reserveMinIdle="1")
    env = container_env(run)
    # The container asks for k8sBotCpu; the RuntimeClass admission adds its overhead to the pod, and the
    # quota charges both (kubernetes.io, "Pod Overhead"): 6 pods × (500m + 250m), × (2Gi + 160Mi).
    assert (env["K8S_BOT_CPU"]["value"], env["K8S_BOT_MEMORY"]["value"]) == ("500m", "2Gi")
    assert env["K8S_RUNTIME_CLASS"]["value"] == "kata-qemu"
    assert spec(run.one("kubernetes:core/v1:ResourceQuota"))["hard"] == {
        "pods": "6", "requests.cpu": "4500m", "limits.cpu": "4500m", "requests.memory": "13248Mi",
        "limits.memory": "13248Mi"}
