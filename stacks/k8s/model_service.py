"""The shared GPU model service converged bots stream to (`k8sModelImage`): its own namespace (Pod
Security `restricted`), one Deployment of one pod on the GPU nodes (the dispatcher reads one capacity),
a ClusterIP Service whose URL is MODEL_SERVICE_URL, and a NetworkPolicy under which only the bots and
the dispatcher reach it and it reaches nothing. The pod has the stack's other workloads' hardening.
No PodDisruptionBudget: with one pod it would hold every drain of its node. What each part does and
why: docs/kubernetes.md, "A shared GPU model service"; the pods' policy: stacks/k8s/model_admission.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pulumi
import pulumi_kubernetes.apps as k8s_apps
import pulumi_kubernetes.core as k8s_core
import pulumi_kubernetes.networking as k8s_networking

from dispatcher.models.settings import CAPACITY_PATH
from stacks.config.k8s_model import ModelService
from stacks.k8s.dispatcher import grace_seconds, pod_annotations
from stacks.k8s.mesh import probe_sources, tunnel_ports
from stacks.k8s.namespaces import pod_security_labels
from stacks.k8s.network_policies import BOT_SELECTOR, ModelPods, namespace

PORT_NAME = "http"
CONTAINER = "model"
SCRATCH = "/tmp"  # noqa: S108 - an emptyDir of the pod's own, the only place it writes
SCRATCH_LIMIT = "2Gi"
# Loading the weights takes minutes: the startup probe allows 10 from the container's start (the image's
# pull comes before, outside every probe), then readiness holds the pod out of the Service while its
# capacity does not answer.
STARTUP_PERIOD_SECONDS, STARTUP_FAILURES = 10, 60
# How long an `up` waits for the pod to be ready: the pull, the load, and with Recreate the old pod's drain.
LOAD_SECONDS = 30 * 60


@dataclass(frozen=True)
class ModelServiceArgs:
    model: ModelService
    labels: dict[str, str]
    selector: dict[str, str]  # the model's pods
    bot_namespace: pulumi.Input[str]
    dispatcher_namespace: pulumi.Input[str]
    dispatcher_selector: dict[str, str]
    max_session_seconds: int
    after: tuple[pulumi.Resource, ...] = ()  # its admission policy: created first, deleted last
    # the mesh whose tunnel port and probe source its policy lets through (stacks/k8s/mesh.py kept_mesh): its
    # namespace is enrolled with the stack's two, so every converged call's audio is in the mesh's mTLS
    channel_tls: pulumi.Input[str] = ""


def model_selector(project: str, stack: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": f"{project}-model", "app.kubernetes.io/instance": stack}


def model_pods(model: ModelService | None, project: str, stack: str) -> ModelPods | None:
    """Where the bots' egress lets them stream: None without a model service."""
    return None if model is None else ModelPods(model.namespace, model_selector(project, stack), model.port)


def probes() -> dict[str, dict[str, Any]]:
    """All on the capacity read: a pod that cannot say its free streams is not serving (docs/converged.md)."""
    get = {"path": CAPACITY_PATH, "port": PORT_NAME}
    return {
        "startup_probe": {"http_get": get, "period_seconds": STARTUP_PERIOD_SECONDS,
                          "failure_threshold": STARTUP_FAILURES, "timeout_seconds": 2},
        "readiness_probe": {"http_get": get, "period_seconds": 5, "failure_threshold": 2, "timeout_seconds": 2},
        "liveness_probe": {"http_get": get, "period_seconds": 15, "failure_threshold": 4, "timeout_seconds": 5},
    }


def pod_spec(model: ModelService, max_session_seconds: int) -> dict[str, Any]:
    sizes = {"cpu": model.cpu, "memory": model.memory}
    return {
        "automount_service_account_token": False,  # it calls nothing in the cluster
        "enable_service_links": False,
        # SIGTERM: the server answers no free stream (starts are refused, saying why) and ends with its last call.
        "termination_grace_period_seconds": grace_seconds(max_session_seconds),
        "security_context": {"run_as_non_root": True, "seccomp_profile": {"type": "RuntimeDefault"}},
        **({"node_selector": dict(model.node_selector)} if model.node_selector else {}),
        **({"tolerations": [dict(t) for t in model.tolerations]} if model.tolerations else {}),
        "volumes": [{"name": "scratch", "empty_dir": {"size_limit": SCRATCH_LIMIT}}],
        "containers": [{
            "name": CONTAINER,
            "image": model.image,
            "ports": [{"name": PORT_NAME, "container_port": model.port}],
            "env": [{"name": "MODEL_SERVICE_PORT", "value": str(model.port)},
                    {"name": "MODEL_SERVICE_STREAMS", "value": str(model.streams)},
                    {"name": "HF_HUB_OFFLINE", "value": "1"},  # weights from the image: nothing to fetch
                    # The root filesystem is read-only: what a library writes under ~ (Triton's kernel cache)
                    # goes to the scratch emptyDir. HF_HOME and XDG_CACHE_HOME stay the image's: the weights
                    # are baked under them (docs/images.md), and overriding them would hide the weights.
                    {"name": "HOME", "value": SCRATCH}],
            # Equal requests and limits (Guaranteed); an extended resource's request defaults to its limit.
            "resources": {"requests": sizes, "limits": {**sizes, "nvidia.com/gpu": str(model.gpus)}},
            "security_context": {"allow_privilege_escalation": False, "read_only_root_filesystem": True,
                                 "capabilities": {"drop": ["ALL"]}},
            "volume_mounts": [{"name": "scratch", "mount_path": SCRATCH}],
            **probes(),
        }],
    }


def ingress(args: ModelServiceArgs, mesh: str) -> list[dict[str, Any]]:
    """The bots' pods (their streams) and the dispatcher's (its capacity reads), on the one port both use and
    the mesh's tunnel port; the kubelet's probes from the mesh's source."""
    port = [{"port": args.model.port, "protocol": "TCP"}]
    return [
        {"from": [{"namespace_selector": namespace(args.bot_namespace),
                   "pod_selector": {"match_labels": BOT_SELECTOR}}], "ports": [*port, *tunnel_ports(mesh)]},
        {"from": [{"namespace_selector": namespace(args.dispatcher_namespace),
                   "pod_selector": {"match_labels": args.dispatcher_selector}}], "ports": [*port, *tunnel_ports(mesh)]},
        *([{"from": probes, "ports": port}] if (probes := probe_sources(mesh)) else []),
    ]


class ModelServiceStack(pulumi.ComponentResource):
    url: str
    policy: pulumi.Resource  # its NetworkPolicy: the mesh's label waits for it
    namespace: pulumi.Output[str]

    def __init__(self, name: str, args: ModelServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:k8s:ModelService", name, None, opts)
        model = args.model
        child = pulumi.ResourceOptions(parent=self)
        labels = {**args.labels, **args.selector}
        # Not protected, unlike the stack's own two: it holds nothing stateful, and taking k8sModelImage out
        # is meant to remove it.
        space = k8s_core.v1.Namespace(name, metadata={
            "name": model.namespace, "labels": {**args.labels, **pod_security_labels("restricted")}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)))
        here = space.metadata.name
        # Before the pod: a policy applies to what is created after it.
        policy = k8s_networking.v1.NetworkPolicy(name, metadata={
            "name": "voicefleet-model", "namespace": here, "labels": args.labels}, spec=cast(
            k8s_networking.v1.NetworkPolicySpecArgsDict, {
                "pod_selector": {"match_labels": args.selector},
                "policy_types": ["Ingress", "Egress"], "egress": [],
                "ingress": pulumi.Output.from_input(args.channel_tls).apply(
                    lambda mesh: pulumi.Output.from_input(ingress(args, mesh)))}),
            opts=child)
        self.policy = policy
        self.namespace = here
        notes = pod_annotations(args.max_session_seconds)
        timeout = f"{grace_seconds(args.max_session_seconds) + LOAD_SECONDS}s"
        k8s_apps.v1.Deployment(name, metadata={"name": model.service_name, "namespace": here, "labels": labels},
                               spec=cast(k8s_apps.v1.DeploymentSpecArgsDict, {
            "replicas": model.replicas,
            "selector": {"match_labels": args.selector},
            # One GPU pod: a rolling update would need a second GPU, and two pods behind the Service would split
            # the capacity the dispatcher reads. The old pod drains its calls before the new one starts.
            "strategy": {"type": "Recreate"},
            # The pods carry their selector alone: the stack's labels (its environment among them) on the pod
            # template would make an `environment` change a new pod, the model's drain and reload.
            "template": {"metadata": {"labels": args.selector, **({"annotations": notes} if notes else {})},
                         "spec": pod_spec(model, args.max_session_seconds)},
        }), opts=pulumi.ResourceOptions(parent=self, depends_on=[policy], custom_timeouts=pulumi.CustomTimeouts(
            create=f"{LOAD_SECONDS}s", update=timeout, delete=timeout)))
        k8s_core.v1.Service(name, metadata={"name": model.service_name, "namespace": here, "labels": labels}, spec={
            "type": "ClusterIP", "selector": args.selector,
            "ports": [{"name": PORT_NAME, "port": model.port, "target_port": PORT_NAME}]}, opts=child)
        self.url = model.url
        self.register_outputs({"url": self.url})
