"""The shared GPU model service (`k8sModelImage`): its pod on the GPU nodes with the stack's hardening, its
Service named by MODEL_SERVICE_URL in the dispatcher's and every bot's environment, and the policies under
which only the bots and the dispatcher reach it and it reaches nothing."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest

from dispatcher.models.settings import ModelServiceSettings
from stacks.k8s.pool_template import dispatcher_settings
from stacks.tools.mocks import Run, unwrap
from tests.fakes.k8s import KUBE_VERSION
from tests.infra.k8s.admission_cel import Call, refusal
from tests.infra.k8s.conftest import K8sRunner, spec
from tests.infra.k8s.test_agent_sandbox import TEMPLATE
from tests.infra.k8s.test_bot_pods_policy import DISPATCHER, dispatchers_pods

MODEL_IMAGE = "registry.example.com/team/moshi-batched@sha256:" + "e" * 64
URL = "http://voicefleet-model.voicefleet-model.svc:8998"
DEPLOYMENT, POLICY = "kubernetes:apps/v1:Deployment", "kubernetes:networking.k8s.io/v1:NetworkPolicy"
NS = "kubernetes.io/metadata.name"


def named(run: Run, kind: str, name: str) -> dict[str, Any]:
    (found,) = [unwrap(r.inputs) for r in run.of_type(kind) if unwrap(r.inputs)["metadata"]["name"] == name]
    return found


def stack_outputs(run: Run) -> dict[str, Any]:
    (found,) = (values for values in run.completed.values() if "cloud" in values)
    return found


def dispatcher_env(run: Run) -> dict[str, str]:
    (container,) = named(run, DEPLOYMENT, "dispatcher")["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


@pytest.fixture(scope="module")
def model_run() -> Run:
    return model_program()


def model_program(**overrides: str) -> Run:
    """The stack with a model service of two GPUs on H200 nodes (program_cache keeps one run per config)."""
    from tests.infra import program_cache
    from tests.infra.conftest import K8S_STACK_SECRETS, config_for

    config = config_for("k8s", {"k8sModelImage": MODEL_IMAGE, "k8sModelGpus": "2", "k8sModelCpu": "8",
                                "k8sModelMemory": "64Gi", "k8sModelStreams": "96",
                                "k8sModelNodeSelector": json.dumps({"nvidia.com/gpu.product": "NVIDIA-H200"}),
                                **overrides},
                        K8S_STACK_SECRETS)
    return program_cache.run(config, list(K8S_STACK_SECRETS), stack="k8s-test", generation=1, previous=None)


def test_the_model_runs_on_the_gpu_nodes_as_the_stacks_other_workloads_do(model_run: Run) -> None:
    deployment = named(model_run, DEPLOYMENT, "voicefleet-model")
    assert deployment["metadata"]["namespace"] == "voicefleet-model"
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H200"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["volumes"] == [{"name": "scratch", "emptyDir": {"sizeLimit": "2Gi"}}]
    (container,) = pod["containers"]
    assert container["image"] == MODEL_IMAGE and "command" not in container and "args" not in container
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    assert container["resources"] == {"requests": {"cpu": "8", "memory": "64Gi"},
                                      "limits": {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "2"}}
    # HOME in the scratch emptyDir, the one place it writes; HF_HOME and XDG_CACHE_HOME are the image's (its weights).
    assert {e["name"]: e["value"] for e in container["env"]} == {
        "MODEL_SERVICE_PORT": "8998", "MODEL_SERVICE_STREAMS": "96", "HF_HUB_OFFLINE": "1", "HOME": "/tmp"}
    assert {"name": "scratch", "mountPath": "/tmp"} in container["volumeMounts"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/api/capacity", "port": "http"}
    assert container["startupProbe"]["periodSeconds"] * container["startupProbe"]["failureThreshold"] >= 600
    # It drains its calls as the dispatcher does: the longest session and its start.
    dispatcher = named(model_run, DEPLOYMENT, "dispatcher")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == dispatcher["terminationGracePeriodSeconds"]


def test_its_namespace_is_its_own_and_restricted_and_no_budget_holds_a_drain(model_run: Run) -> None:
    """With one pod, a budget of no disruption would hold every drain of its node until someone deleted the
    pod by hand: an eviction's SIGTERM and the pod's grace let its calls run out instead."""
    namespace = named(model_run, "kubernetes:core/v1:Namespace", "voicefleet-model")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    budgets = model_run.of_type("kubernetes:policy/v1:PodDisruptionBudget")
    assert [unwrap(b.inputs)["metadata"]["namespace"] for b in budgets] == ["voicefleet"]  # the dispatcher's alone


def test_the_service_is_what_the_dispatcher_and_every_bot_are_told(model_run: Run) -> None:
    service = named(model_run, "kubernetes:core/v1:Service", "voicefleet-model")
    assert service["metadata"]["namespace"] == "voicefleet-model"
    assert service["spec"]["ports"] == [{"name": "http", "port": 8998, "targetPort": "http"}]
    pods = named(model_run, DEPLOYMENT, "voicefleet-model")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pods.items()
    env = dispatcher_env(model_run)
    assert env["MODEL_SERVICE_URL"] == URL
    # as the dispatcher reads it: its capacity read, and what its bots are told
    read = ModelServiceSettings.from_env(env)
    assert read is not None and read.capacity_url == URL + "/api/capacity"
    assert dispatcher_settings({k: v for k, v in env.items() if v is not None}).model_service_url == URL
    assert stack_outputs(model_run)["modelServiceUrl"] == URL


@pytest.mark.parametrize(("change", "environment"), [({"environment": "staging"}, "staging"),
                                                     ({"profile": "prod"}, "prod")])
def test_a_new_environment_or_profile_relabels_the_deployment_not_its_pod(
        model_run: Run, change: dict[str, str], environment: str) -> None:
    """A new pod template is a new pod (`Recreate`): the model's drain, up to maxSessionSeconds + 60 s of
    refused converged starts, and its reload. The stack's labels stay on the Deployment and the Service."""
    changed = model_program(**change)
    before, after = named(model_run, DEPLOYMENT, "voicefleet-model"), named(changed, DEPLOYMENT, "voicefleet-model")
    assert after["spec"]["template"] == before["spec"]["template"]
    assert before["metadata"]["labels"]["voicefleet.io/environment"] != environment
    assert after["metadata"]["labels"]["voicefleet.io/environment"] == environment


def test_only_the_bots_and_the_dispatcher_reach_it_on_its_port_and_it_reaches_nothing(model_run: Run) -> None:
    model = named(model_run, POLICY, "voicefleet-model")
    assert model["metadata"]["namespace"] == "voicefleet-model"
    pods = named(model_run, DEPLOYMENT, "voicefleet-model")["spec"]["selector"]
    assert model["spec"]["podSelector"] == pods
    assert model["spec"]["policyTypes"] == ["Ingress", "Egress"] and not model["spec"].get("egress")
    dispatcher = named(model_run, DEPLOYMENT, "dispatcher")["spec"]["selector"]
    port = [{"port": 8998, "protocol": "TCP"}]
    assert model["spec"]["ingress"] == [
        {"from": [{"namespaceSelector": {"matchLabels": {NS: "voicefleet-bots"}},
                   "podSelector": {"matchLabels": {"voicefleet.io/app": "bot"}}}], "ports": port},
        {"from": [{"namespaceSelector": {"matchLabels": {NS: "voicefleet"}}, "podSelector": dispatcher}],
         "ports": port}]


def test_under_istio_ambient_its_namespace_joins_the_mesh_once_every_policy_lets_the_tunnel_through() -> None:
    """The bots' streams to it carry every converged call's audio: in the mesh's mTLS as the channel is. Ambient
    carries them as HBONE to the model pod's port 15008 and rewrites the kubelet's probes to 169.254.7.127
    (Istio, "Ambient and Kubernetes NetworkPolicy"), so its policy and the bots' egress let both through first."""
    run = model_program(k8sChannelTls="istio-ambient")
    hbone, port = {"port": 15008, "protocol": "TCP"}, {"port": 8998, "protocol": "TCP"}
    bots, dispatcher, probes = named(run, POLICY, "voicefleet-model")["spec"]["ingress"]
    assert bots["ports"] == dispatcher["ports"] == [port, hbone]
    assert probes == {"from": [{"ipBlock": {"cidr": "169.254.7.127/32"}}], "ports": [port]}
    to_model = [rule for rule in named(run, POLICY, "voicefleet-bots")["spec"]["egress"]
                if "voicefleet-model" in json.dumps(rule.get("to"))]
    assert [rule["ports"] for rule in to_model] == [[port, hbone]]
    (enrolment,) = [p for p in run.of_type("kubernetes:core/v1:NamespacePatch")
                    if unwrap(p.inputs)["metadata"]["name"] == "voicefleet-model"]
    assert unwrap(enrolment.inputs)["metadata"]["labels"] == {"istio.io/dataplane-mode": "ambient"}
    policies = {r.urn for r in run.of_type(POLICY)}
    assert len(policies) == 3 and policies <= set(enrolment.dependencies)  # the bots', the dispatcher's, its own
    (space,) = [r for r in run.of_type("kubernetes:core/v1:Namespace") if r.name.endswith("-model")]
    assert "istio.io/dataplane-mode" not in unwrap(space.inputs)["metadata"]["labels"]


def test_the_bots_egress_gains_the_models_pods_on_its_port_alone(model_run: Run) -> None:
    bots = named(model_run, POLICY, "voicefleet-bots")
    *_, internet, model = bots["spec"]["egress"]
    pods = named(model_run, DEPLOYMENT, "voicefleet-model")["spec"]["selector"]
    assert model == {"to": [{"namespaceSelector": {"matchLabels": {NS: "voicefleet-model"}}, "podSelector": pods}],
                     "ports": [{"port": 8998, "protocol": "TCP"}]}
    assert "10.0.0.0/8" in internet["to"][0]["ipBlock"]["except"]  # the rest of the cluster stays closed


def test_without_the_image_the_stack_is_unchanged(k8s: Run) -> None:
    assert not [r for r in k8s.registrations if "model" in r.name]
    assert "MODEL_SERVICE_URL" not in dispatcher_env(k8s) and "modelServiceUrl" not in stack_outputs(k8s)
    assert len(named(k8s, POLICY, "voicefleet-bots")["spec"]["egress"]) == 3


def test_pool_bots_are_told_the_url_too(k8s_stack: K8sRunner) -> None:
    run = k8s_stack(k8sMode="agent-sandbox", k8sDeployer="ci@example.com", k8sModelImage=MODEL_IMAGE)
    templates = [spec(template) for template in run.of_type(TEMPLATE)]
    assert templates
    for template in templates:
        (container,) = template["podTemplate"]["spec"]["containers"]
        assert {"name": "MODEL_SERVICE_URL", "value": URL} in container["env"]
        # and its egress reaches the model as the bots' NetworkPolicy does
        assert template["networkPolicy"]["egress"][-1]["ports"] == [{"port": 8998, "protocol": "TCP"}]


def test_its_objects_are_valid_kubernetes(model_run: Run) -> None:
    for kind, api, name in ((DEPLOYMENT, "apps/v1", "Deployment"), (POLICY, "networking.k8s.io/v1", "NetworkPolicy"),
                            ("kubernetes:core/v1:Service", "v1", "Service")):
        obj = named(model_run, kind, "voicefleet-model")
        kubernetes_validate.validate({"apiVersion": api, "kind": name, **obj}, KUBE_VERSION, strict=True)


def test_the_bots_admission_policy_still_admits_the_dispatchers_pods_told_the_url(model_run: Run) -> None:
    policy = named(model_run, "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy",
                   "voicefleet-k8s-test-bots-made-by-the-dispatcher")["spec"]
    """The dispatcher adds the URL to each pod's env as a launch value (its launch_env:
    tests/dispatcher/machines/test_k8s_model_service.py); the bots' policy takes a literal value."""
    for pod in dispatchers_pods(model_run):
        pod["spec"]["containers"][0]["env"].append({"name": "MODEL_SERVICE_URL", "value": URL})
        assert refusal(policy, Call(DISPATCHER, "CREATE", "", "pods", obj=pod)) is None
