"""InClusterStore: the replicas' Valkey in the dispatcher's namespace (`k8sStore: in-cluster`).

One pod of the official `valkey/valkey` image, pinned by tag (docs/kubernetes.md, "The in-cluster
store", says how to pin its digest), in a StatefulSet whose volume claim template gives it its data
directory: append-only, so a restarted pod replays every write it acknowledged. The pod fits Pod
Security `restricted` with a read-only root: the image's `valkey` user (uid 999, the image's own), no
privilege escalation, no capability, the runtime's seccomp profile; the entrypoint, run as that
user, only checks that its working directory, /data, the volume, is writable.

Its configuration is a file in a Secret, mounted read-only, never in the args or the environment:
the `default` user off with no password, and the dispatcher's user with exactly the rules the AWS
stack gives ElastiCache (stacks/shared/store_access.py) and `storePassword` (with `storePreviousPassword`
during a rotation) as SHA-256 hashes, so the file holds no password. The Secret is named by Pulumi,
so a new password is a new Secret and the StatefulSet rolls its pod onto it (stacks/k8s/secrets.py
says why). `maxmemory` with `noeviction`: a full store refuses writes rather than drop a lease.

A ClusterIP Service names it; a NetworkPolicy lets in the dispatcher's pods on 6379 and nothing
else (bots never), and lets nothing out. Plain TCP inside the cluster (docs/security.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import pulumi
import pulumi_kubernetes.apps as k8s_apps
import pulumi_kubernetes.core as k8s_core
import pulumi_kubernetes.networking as k8s_networking

from stacks.config.k8s import STACK_TLS
from stacks.config.store_ceiling import K8S_MAXMEMORY_MIB, K8S_STORE_MEMORY_MIB
from stacks.k8s.mesh import probe_sources, tunnel_ports
from stacks.shared.store_access import ACCESS, USER

# docker.io's official image (valkey-io/valkey-container 8.1/debian/Dockerfile): Valkey 8.1.8 on Debian
# trixie, its `valkey` user and group 999, its working directory /data, which its entrypoint requires
# writable when it does not start as root.
IMAGE = "valkey/valkey:8.1.8"
VALKEY_UID = 999
NAME = "voicefleet-store"
PORT, PORT_NAME = 6379, "valkey"
DATA_DIR, CONFIG_DIR, CONFIG_FILE = "/data", "/etc/valkey", "valkey.conf"
# Half the container's memory for `maxmemory`: an append-only file's rewrite forks, and the fork's
# copy-on-write pages count against the same limit. The plan's store ceiling counts the same figures.
CPU, MEMORY_MIB, MAXMEMORY_MB = "500m", K8S_STORE_MEMORY_MIB, K8S_MAXMEMORY_MIB


def password_hash(password: str) -> str:
    """An ACL `#<hash>` rule's hash: Valkey compares the SHA-256 of what a client sends with it."""
    return hashlib.sha256(password.encode()).hexdigest()


def valkey_config(passwords: Sequence[str]) -> str:
    """The server's configuration: where it keeps its data, its memory, and its users (the dispatcher's,
    signing in with any of `passwords`; `default`, off)."""
    hashes = " ".join(f"#{password_hash(p)}" for p in passwords)
    return "\n".join([
        "# The voicefleet stack's in-cluster store (stacks/k8s/store.py).",
        f"port {PORT}",
        "bind * -::*",
        'save ""',
        "appendonly yes",
        "appendfsync everysec",
        f"maxmemory {MAXMEMORY_MB}mb",
        "maxmemory-policy noeviction",
        "user default off resetpass resetkeys resetchannels -@all",
        f"user {USER} reset {hashes} {ACCESS}",
        "",
    ])


@dataclass(frozen=True)
class InClusterStoreArgs:
    namespace: pulumi.Input[str]
    namespace_name: str  # the same, as the Service's DNS name needs it plain
    passwords: Sequence[pulumi.Input[str]]  # secret: storePassword, and storePreviousPassword in a rotation
    storage_mib: int
    labels: dict[str, str]
    selector: dict[str, str]  # the store pod's own labels
    dispatcher_selector: dict[str, str]  # the only pods let in
    # under a mesh, its tunnel port and probe source too (stacks/k8s/mesh.py kept_mesh)
    channel_tls: pulumi.Input[str] = STACK_TLS


class InClusterStore(pulumi.ComponentResource):
    url: str  # REDIS_URL: the user, the Service; no password
    objects: tuple[pulumi.Resource, ...]  # what the dispatcher's Deployment waits for

    def __init__(self, name: str, args: InClusterStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:k8s:InClusterStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = {**args.labels, **args.selector}
        config: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.all(*args.passwords).apply(lambda passwords: valkey_config(passwords)))
        secret = k8s_core.v1.Secret(f"{name}-config", metadata={"namespace": args.namespace, "labels": labels},
                                    type="Opaque", string_data={CONFIG_FILE: config},
                                    opts=child)
        service = k8s_core.v1.Service(name, metadata={"name": NAME, "namespace": args.namespace, "labels": labels},
                                      spec={"type": "ClusterIP", "selector": args.selector,
                                             "ports": [{"name": PORT_NAME, "port": PORT, "target_port": PORT_NAME}]},
                                      opts=child)
        policy = k8s_networking.v1.NetworkPolicy(name, metadata={
            "name": NAME, "namespace": args.namespace, "labels": args.labels},
            spec=cast(k8s_networking.v1.NetworkPolicySpecArgsDict, {
                "pod_selector": {"match_labels": args.selector},
                "policy_types": ["Ingress", "Egress"],
                "ingress": pulumi.Output.from_input(args.channel_tls).apply(lambda mesh: [
                    {"from": [{"pod_selector": {"match_labels": args.dispatcher_selector}}],
                     "ports": [{"port": PORT, "protocol": "TCP"}, *tunnel_ports(mesh)]},
                    *([{"from": probes, "ports": [{"port": PORT, "protocol": "TCP"}]}]
                      if (probes := probe_sources(mesh)) else [])]),
                "egress": [],
            }), opts=child)
        stateful_set = k8s_apps.v1.StatefulSet(name, metadata={
            "name": NAME, "namespace": args.namespace, "labels": labels},
            spec=cast(k8s_apps.v1.StatefulSetSpecArgsDict, {
                "service_name": service.metadata.name,
                "replicas": 1,
                "selector": {"match_labels": args.selector},
                "template": {"metadata": {"labels": labels}, "spec": _pod_spec(secret.metadata.name)},
                "volume_claim_templates": [{"metadata": {"name": "data", "labels": labels}, "spec": {
                    "access_modes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": f"{args.storage_mib}Mi"}}}}],
            }),
            # A changed claim template would replace the StatefulSet, deleted first (its name is fixed), the
            # store down meanwhile, and the kept claim keeps its size anyway: grow the claim instead (docs).
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy], ignore_changes=["spec.volumeClaimTemplates"]))
        self.url = f"redis://{USER}@{NAME}.{args.namespace_name}.svc:{PORT}/0"
        self.objects = (service, stateful_set)
        self.policies: tuple[pulumi.Resource, ...] = (policy,)  # what the mesh's label waits for
        self.register_outputs({"url": self.url})


def _pod_spec(config_secret: pulumi.Input[str]) -> dict[str, Any]:
    memory = f"{MEMORY_MIB}Mi"
    probe = {"tcp_socket": {"port": PORT_NAME}}
    return {
        "enable_service_links": False,
        "automount_service_account_token": False,
        "security_context": {"run_as_non_root": True, "run_as_user": VALKEY_UID, "run_as_group": VALKEY_UID,
                             "fs_group": VALKEY_UID, "seccomp_profile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "valkey",
            "image": IMAGE,
            # The data directory after the file (a file's `dir` changes directory as it is read).
            "args": ["valkey-server", f"{CONFIG_DIR}/{CONFIG_FILE}", "--dir", DATA_DIR],
            "ports": [{"name": PORT_NAME, "container_port": PORT}],
            "resources": {"requests": {"cpu": CPU, "memory": memory}, "limits": {"cpu": CPU, "memory": memory}},
            "security_context": {"allow_privilege_escalation": False, "read_only_root_filesystem": True,
                                 "capabilities": {"drop": ["ALL"]}},
            "volume_mounts": [{"name": "data", "mount_path": DATA_DIR},
                              {"name": "config", "mount_path": CONFIG_DIR, "read_only": True}],
            "readiness_probe": {**probe, "period_seconds": 5, "failure_threshold": 2},
            "liveness_probe": {**probe, "period_seconds": 15, "failure_threshold": 4},
        }],
        # Readable by the pod's group only (fsGroup): the file holds the users' password hashes.
        "volumes": [{"name": "config", "secret": {"secret_name": config_secret, "default_mode": 0o440}}],
    }
