"""The stack's two namespaces and the bots' quota.

Both namespaces enforce Pod Security `restricted` (the pods provider builds every bot pod for it,
dispatcher/machines/k8s/pods.py; the dispatcher's and the store's pods meet it), and audit and warn at
the same level so a refused pod is said too. The bots' ResourceQuota is the hard cap on bots: `pods`,
and CPU and memory as that many bots' requests and limits (equal: each bot pod is Guaranteed), each with
the runtime class's Pod Overhead, which Kubernetes charges to the quota too; a create past it is the
dispatcher's `503 k8s_capacity` (docs/kubernetes.md, "Errors").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes.core as k8s_core

POD_SECURITY = "restricted"
# The namespace label every cluster since 1.22 sets itself (NamespaceDefaultLabelName): what
# NetworkPolicies select a namespace by.
NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class NamespacesArgs:
    dispatcher: str
    bots: str
    labels: dict[str, str]
    bot_pods: int  # the quota: sessions plus the reserve's idle bots
    pod_millicores: int  # each bot pod's CPU: its container's and the Pod Overhead (KubernetesSettings.pod_millicores)
    pod_mebibytes: int  # each bot pod's memory, the same way
    protect: bool
    # what enrols both in the mesh (stacks/k8s/mesh.py), written by `enrol` after the NetworkPolicies
    mesh_labels: dict[str, str] = field(default_factory=dict)


def pod_security_labels(level: str) -> dict[str, str]:
    return {f"pod-security.kubernetes.io/{mode}": level for mode in ("enforce", "audit", "warn")}


class Namespaces(pulumi.ComponentResource):
    dispatcher: pulumi.Output[str]
    bots: pulumi.Output[str]

    def __init__(self, name: str, args: NamespacesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:k8s:Namespaces", name, None, opts)
        # Deleting a namespace deletes everything in it: protected with the stack's stateful resources.
        kept = pulumi.ResourceOptions(parent=self, protect=args.protect)
        # The dispatcher's pods (and the in-cluster store's) meet `restricted` already: enforced, so a later
        # template cannot regress.
        enrolled = {**args.labels, **pod_security_labels(POD_SECURITY)}
        dispatcher = k8s_core.v1.Namespace(f"{name}-dispatcher", metadata={"name": args.dispatcher, "labels": enrolled},
                                           opts=kept)
        bots = k8s_core.v1.Namespace(f"{name}-bots", metadata={"name": args.bots, "labels": enrolled}, opts=kept)
        cpu, memory = f"{args.bot_pods * args.pod_millicores}m", f"{args.bot_pods * args.pod_mebibytes}Mi"
        k8s_core.v1.ResourceQuota(f"{name}-bots", metadata={
            "name": "voicefleet-bots", "namespace": bots.metadata.name, "labels": args.labels},
            spec={"hard": {"pods": str(args.bot_pods), "requests.cpu": cpu, "limits.cpu": cpu,
                           "requests.memory": memory, "limits.memory": memory}},
            opts=pulumi.ResourceOptions(parent=self))
        self.dispatcher = dispatcher.metadata.name
        self.bots = bots.metadata.name
        self._mesh_labels = args.mesh_labels
        self.register_outputs({"dispatcher": self.dispatcher, "bots": self.bots})

    def enrol(self, name: str, after: tuple[pulumi.Resource, ...],
              others: tuple[tuple[str, pulumi.Input[str]], ...] = ()) -> None:
        """The mesh's label on both namespaces, and `others` (suffix, name: the model service's), written
        (server-side apply, its own field manager) once every policy in `after` lets the mesh's tunnel and
        probes through: the label enrols the running pods at once."""
        if not self._mesh_labels:
            return
        for suffix, namespace in (("dispatcher", self.dispatcher), ("bots", self.bots), *others):
            k8s_core.v1.NamespacePatch(f"{name}-{suffix}-mesh", metadata={"name": namespace,
                                                                       "labels": dict(self._mesh_labels)},
                                       opts=pulumi.ResourceOptions(parent=self, depends_on=list(after)))
