"""The dispatcher on Kubernetes: a Deployment of two replicas or more, its disruption budget, a Service, an Ingress.

The pods run as the dispatcher's ServiceAccount (its token is what the pods provider calls the API
server with), non-root, every capability dropped. Settings are plain env; every secret is a
`secretKeyRef` into the stack's Secret (stacks/k8s/secrets.py), never a value in the pod spec.

Two ports: the API's, which the Ingress routes, and the bots' channel (BOT_CHANNEL_PORT), which
only the Service exposes, so `/bots/…` is never reachable from outside the cluster.

Probes on /healthz: startup (up to a minute), liveness, readiness. A draining replica answers 503
there (dispatcher/serving/draining.py), so readiness takes it out of the Service at once while its
calls go on.

The drain: a rollout or a node drain sends SIGTERM, and the dispatcher relays the calls it holds
until they end or PHONE_DRAIN_SECONDS (the longest session) pass; `terminationGracePeriodSeconds`
gives it the longest session plus a call's start (stacks/config/phone.py CALL_START_MARGIN_SECONDS)
before SIGKILL. Rollouts add a replica before removing one (maxUnavailable 0), and the
PodDisruptionBudget lets a voluntary disruption take one replica at a time. `drain: true` before a
destroy scales it to zero, so nothing launches bots while `python -m stacks.drain` runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import pulumi
import pulumi_kubernetes.apps as k8s_apps
import pulumi_kubernetes.core as k8s_core
import pulumi_kubernetes.networking as k8s_networking
import pulumi_kubernetes.policy as k8s_policy

from stacks.config.phone import CALL_START_MARGIN_SECONDS
from stacks.shared import contract

PROBE_PATH = "/healthz"
PORT_NAME = "http"
SERVICE_PORT = 80
# The bots' routes only (BOT_CHANNEL_PORT): a second Service port that no Ingress rule names.
CHANNEL_PORT_NAME = "channel"
CHANNEL_SERVICE_PORT = contract.DISPATCHER_CHANNEL_PORT
# Seconds: a stack's `up` waits for the rollout; a replaced replica's drain is the longest session.
ROLLOUT_MARGIN_SECONDS = 600
# The cluster autoscaler's default `--max-graceful-termination-sec`: a scale-down kills a pod this long
# after its SIGTERM, whatever its own grace. Past it, the pods ask the autoscaler to leave their nodes.
AUTOSCALER_GRACE_SECONDS = 600
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"


@dataclass(frozen=True)
class DispatcherArgs:
    namespace: pulumi.Input[str]
    image: pulumi.Input[str]  # by digest
    service_account: pulumi.Input[str]
    environment: Mapping[str, pulumi.Input[str]]  # plain settings (stacks/shared/contract.py K8S_ENV)
    secret_env: list[dict[str, Any]]  # each secret by reference (DispatcherSecret.env)
    replicas: int
    cpu: str
    memory_mib: int
    max_session_seconds: int
    host: str
    ingress_class: str
    tls_secret: str | None
    labels: dict[str, str]
    selector: dict[str, str]  # the pods' own labels: the Deployment's, the PDB's, the Service's, the policies'
    drain: bool = False
    depends_on: tuple[pulumi.Resource, ...] = field(default=())
    # The channel's certificate (stacks/k8s/channel_tls.py): its Secret's volume and mount, and the pod
    # template's note of the leaf (a new one rolls the replicas).
    volumes: tuple[dict[str, Any], ...] = ()
    volume_mounts: tuple[dict[str, Any], ...] = ()
    pod_notes: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)


def grace_seconds(max_session_seconds: int) -> int:
    """How long a replica being stopped keeps relaying its calls: the longest session and its start."""
    return max_session_seconds + CALL_START_MARGIN_SECONDS


def pod_annotations(max_session_seconds: int) -> dict[str, str]:
    return evict_note(grace_seconds(max_session_seconds))


def evict_note(grace: int) -> dict[str, str]:
    """A grace longer than the autoscaler waits: its scale-down would cut the calls a pod relays (a replica's, the
    SIP edge's), so the autoscaler is told not to remove a node it runs on (docs/kubernetes.md, "Node drains")."""
    return {SAFE_TO_EVICT: "false"} if grace > AUTOSCALER_GRACE_SECONDS else {}


def probes() -> dict[str, dict[str, Any]]:
    get = {"path": PROBE_PATH, "port": PORT_NAME}
    return {
        "startup_probe": {"http_get": get, "period_seconds": 2, "failure_threshold": 30, "timeout_seconds": 2},
        "liveness_probe": {"http_get": get, "period_seconds": 15, "failure_threshold": 3, "timeout_seconds": 5},
        "readiness_probe": {"http_get": get, "period_seconds": 5, "failure_threshold": 2, "timeout_seconds": 3},
    }


def rollout_seconds(max_session_seconds: int) -> int:
    """The longest an update's rollout runs: each replaced replica's drain and the margin."""
    return grace_seconds(max_session_seconds) + ROLLOUT_MARGIN_SECONDS


def rollout_wait(max_session_seconds: int) -> pulumi.CustomTimeouts:
    return drained_rollout_wait(grace_seconds(max_session_seconds))


def drained_rollout_wait(grace: int) -> pulumi.CustomTimeouts:
    """How long `up` waits for a Deployment's rollout whose pods drain up to `grace` (pulumi-kubernetes waits for it,
    10 minutes by default): an update may wait on a pod still draining (a replica where a node has no room for a new
    one; the SIP edge's, `Recreate`, always), and an `up` that stops waiting fails while the rollout goes on. A
    destroy deletes the Deployment in the foreground (pulumi-kubernetes' default) and waits until its pods are gone,
    each draining up to its grace; the provider's own wait is 10 minutes (provider/pkg/await/await.go, `Deletion`)."""
    drained = grace + ROLLOUT_MARGIN_SECONDS
    return pulumi.CustomTimeouts(create=f"{ROLLOUT_MARGIN_SECONDS}s", update=f"{drained}s", delete=f"{drained}s")


class Dispatcher(pulumi.ComponentResource):
    url: pulumi.Output[str]
    service: pulumi.Output[str]
    deployment: pulumi.Output[str]  # resolved once its rollout is
    service_port: int

    def __init__(self, name: str, args: DispatcherArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:k8s:Dispatcher", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = {**args.labels, **args.selector}
        memory = f"{args.memory_mib}Mi"
        plain = [{"name": key, "value": value} for key, value in sorted(args.environment.items())]
        notes: dict[str, pulumi.Input[str]] = {**pod_annotations(args.max_session_seconds), **args.pod_notes}
        deployment = k8s_apps.v1.Deployment(name, metadata={
            "name": contract.DISPATCHER_CONTAINER_NAME, "namespace": args.namespace, "labels": labels},
            spec=cast(k8s_apps.v1.DeploymentSpecArgsDict, {
            "replicas": 0 if args.drain else args.replicas,
            "selector": {"match_labels": args.selector},
            "strategy": {"type": "RollingUpdate", "rolling_update": {"max_unavailable": 0, "max_surge": 1}},
            "template": {
                "metadata": {"labels": labels, **({"annotations": notes} if notes else {})},
                "spec": {
                    "service_account_name": args.service_account,
                    "termination_grace_period_seconds": grace_seconds(args.max_session_seconds),
                    "enable_service_links": False,
                    "security_context": {"run_as_non_root": True, "seccomp_profile": {"type": "RuntimeDefault"}},
                    **({"volumes": list(args.volumes)} if args.volumes else {}),
                    "containers": [{
                        "name": contract.DISPATCHER_CONTAINER_NAME,
                        "image": args.image,
                        "ports": [{"name": PORT_NAME, "container_port": contract.DISPATCHER_PORT},
                                  {"name": CHANNEL_PORT_NAME, "container_port": contract.DISPATCHER_CHANNEL_PORT}],
                        "env": plain + args.secret_env,
                        "resources": {"requests": {"cpu": args.cpu, "memory": memory},
                                      "limits": {"cpu": args.cpu, "memory": memory}},
                        "security_context": {"allow_privilege_escalation": False,
                                             "capabilities": {"drop": ["ALL"]}},
                        **({"volume_mounts": list(args.volume_mounts)} if args.volume_mounts else {}),
                        **probes(),
                    }],
                },
            },
        }), opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on), custom_timeouts=rollout_wait(
            args.max_session_seconds)))
        k8s_policy.v1.PodDisruptionBudget(name, metadata={
            "name": contract.DISPATCHER_CONTAINER_NAME, "namespace": args.namespace, "labels": labels},
            # A crash-looping replica (not Ready) may be evicted whatever the budget says: else it would hold
            # every drain of the other replica's node (GA in Kubernetes 1.31).
            spec={"max_unavailable": 1, "selector": {"match_labels": args.selector},
                  "unhealthy_pod_eviction_policy": "AlwaysAllow"}, opts=child)
        service = k8s_core.v1.Service(name, metadata={
            "name": contract.DISPATCHER_CONTAINER_NAME, "namespace": args.namespace, "labels": labels}, spec={
            "type": "ClusterIP", "selector": args.selector,
            "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "target_port": PORT_NAME},
                      {"name": CHANNEL_PORT_NAME, "port": CHANNEL_SERVICE_PORT, "target_port": CHANNEL_PORT_NAME}]},
            opts=child)
        # The public port only, by name: the channel's port is reachable inside the cluster alone.
        rule = {"host": args.host, "http": {"paths": [{"path": "/", "path_type": "Prefix", "backend": {
            "service": {"name": service.metadata.name, "port": {"name": PORT_NAME}}}}]}}
        k8s_networking.v1.Ingress(name, metadata={
            "name": contract.DISPATCHER_CONTAINER_NAME, "namespace": args.namespace, "labels": labels},
            spec=cast(k8s_networking.v1.IngressSpecArgsDict, {
                "ingress_class_name": args.ingress_class, "rules": [rule],
                **({"tls": [{"hosts": [args.host], "secret_name": args.tls_secret}]} if args.tls_secret else {})}),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment]))
        self.url = pulumi.Output.from_input(f"https://{args.host}")
        self.service = service.metadata.name
        self.deployment = deployment.metadata.name
        self.service_port = SERVICE_PORT
        self.register_outputs({"url": self.url, "service": self.service})
