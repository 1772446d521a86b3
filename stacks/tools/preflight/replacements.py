"""Kubernetes objects a planned config change would replace, where a replacement takes down what runs.

pulumi-kubernetes replaces, never updates, an object whose `.metadata.name` or `.metadata.namespace`
changes, a Deployment whose `.spec.selector` does and a StatefulSet whose `.spec.volumeClaimTemplates`
does (`forceNewProperties`, provider/pkg/provider/diff.go in pulumi/pulumi-kubernetes), and the provider
itself, with every object made through it, when its `clusterIdentifier` changes. Three of those cut
sessions or warm bots: a replaced Namespace is deleted with everything in it; a replaced Deployment is
deleted with every replica at once, past the disruption budget; a replaced agent-sandbox
SandboxTemplate or SandboxWarmPool takes the pool's warm Sandboxes with it. A changed in-cluster
store's claim template (`k8sStoreStorage`) is refused as doing nothing (the stack ignores it).
`python -m stacks.plan <stack> --config KEY=VALUE` refuses those before `pulumi up` does them.

VM hosts (the SIP edge, the TURN relay): an EC2 host made with `userDataReplaceOnChange` is replaced
when its boot script changes and stopped and started by a changed `instanceType`; an Azure VM's
`osProfile.customData` replaces it (ARM never changes it in place) and its `hardwareProfile.vmSize`
restarts it; a Compute Engine VM's `metadataStartupScript`, `zone` or `bootDisk` replaces it (ForceNew),
its `networkInterfaces` stop or replace it, its `machineType` stops and starts it. None is refused (a new
image or a trunk's edit must go out), but `host_notes` says so in the plan: each ends what runs on the
host (docs/sip.md and docs/pulumi.md say which change does which). A Kubernetes stack's edge is a `Recreate`
Deployment of one pod on its node's ports: any change of its pod template stops that pod first, which
`host_notes` says too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from stacks.tools.mocks import Registration, unwrap
from stacks.tools.preflight.immutable import changed

PROVIDER = "pulumi:providers:kubernetes"
NAMESPACE = "kubernetes:core/v1:Namespace"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
TEMPLATE = "kubernetes:extensions.agents.x-k8s.io/v1beta1:SandboxTemplate"
POOL = "kubernetes:extensions.agents.x-k8s.io/v1beta1:SandboxWarmPool"
STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"
# (type, property path) -> what its replacement takes down.
REPLACING: dict[tuple[str, str], str] = {
    (NAMESPACE, "metadata.name"): "deletes the namespace with everything in it (its running pods' sessions end)",
    (DEPLOYMENT, "metadata.name"): "deletes every dispatcher replica at once",
    (DEPLOYMENT, "metadata.namespace"): "deletes every dispatcher replica at once",
    (DEPLOYMENT, "spec.selector"): "deletes every dispatcher replica at once",
    **{(kind, path): "deletes the warm pool's idle bots (claims on it fail until the new one has refilled)"
       for kind in (TEMPLATE, POOL) for path in ("metadata.name", "metadata.namespace")},
    (STATEFUL_SET, "spec.volumeClaimTemplates"): "would delete the store before its successor (a fixed name), so "
                                                 "the stack ignores the change; a claim keeps its size anyway "
                                                 "(grow the store's claim itself: docs/kubernetes.md, "
                                                 "\"The in-cluster store\")",
    # Its DiffConfig replaces the provider when a set identifier changes (provider/pkg/provider/provider.go),
    # and the engine then replaces every object made through it; adding or removing one replaces nothing.
    (PROVIDER, "clusterIdentifier"): "replaces every object the stack made in the cluster (k8sClusterIdentifier "
                                     "names the cluster: change it only to move the stack to another one)",
}


def violations(deployed: Iterable[Registration], planned: Iterable[Registration],
               changes: Mapping[str, str]) -> list[str]:
    keys = ", ".join(f"{key}={value}" for key, value in sorted(changes.items()))
    return [f"{reg.type} {reg.name}: {keys} changes {path} from {old} to {new}, which replaces it and "
            f"{REPLACING[reg.type, path]}: keep the value the stack was created with, or first `drain: true`, "
            "`pulumi up` and `pulumi destroy`, then `up` the new value"
            for reg, path, old, new in changed(deployed, planned, REPLACING)
            if old != new and (reg.type != PROVIDER or (old is not None and new is not None))]


INSTANCE = "aws:ec2/instance:Instance"
GCE_INSTANCE = "gcp:compute/instance:Instance"
AZURE_VM = "azure-native:compute:VirtualMachine"
# A host's type -> its boot script's property, its size's, and where its `role` is (an EC2 or Azure tag, a GCE
# label).
HOST_PROPERTIES = {INSTANCE: ("userData", "instanceType", "tags"),
                   GCE_INSTANCE: ("metadataStartupScript", "machineType", "labels"),
                   AZURE_VM: ("osProfile.customData", "hardwareProfile.vmSize", "tags")}
# A host's type -> its other properties whose change replaces or stops it, and how.
HOST_REPLACING = {GCE_INSTANCE: {"zone": "replaces the host (the old one deleted first)",
                                 "bootDisk": "replaces the host (the old one deleted first)",
                                 "networkInterfaces": "replaces or stops the host"}}
# A host's `role` -> what stopping it ends (stacks/aws/sip_edge.py SIP_EDGE_TAG, stacks/gcp/sip_edge.py
# SIP_EDGE_ROLE, the relays' `turn`).
HOST_ROLES = {"sip-edge": "stops the SIP edge: it refuses new calls and lets those in progress go on for up to its "
                          "drainSeconds only as long as the stop waits (a pod's grace does; a cloud host's shutdown "
                          "may end them sooner: docs/sip.md#draining), and inbound calls get no answer until the new "
                          "host has booted (minutes: the dispatcher image's pull and PJSIP's install)",
              "turn": "ends every WebRTC session relayed through TURN"}


# A Kubernetes stack's edge: its Deployment (stacks/k8s/sip_edge.py NAME) by its `app.kubernetes.io/name` label.
K8S_EDGE_LABEL = ("app.kubernetes.io/name", "sip-edge")


def host_notes(deployed: Iterable[Registration], planned: Iterable[Registration]) -> list[str]:
    """A note for each role-tagged EC2, Compute Engine or Azure host the change replaces (its boot script, a VM's
    zone, boot disk or network interface) or stops (its size). GCE's `metadataStartupScript`
    and Azure's `customData` always replace the VM; EC2's `userData` does when `userDataReplaceOnChange` says so.
    A Kubernetes edge's Deployment (`Recreate`) stops its one pod for any change of its pod template."""
    deployed, planned = list(deployed), list(planned)
    notes = _edge_pod_notes(deployed, planned)
    paths = [(typ, path) for typ, (script, size, _) in HOST_PROPERTIES.items() for path in (script, size)]
    paths += [(typ, path) for typ, replacing in HOST_REPLACING.items() for path in replacing]
    for reg, path, old, new in changed(deployed, planned, paths):
        script, size, where = HOST_PROPERTIES[reg.type]
        inputs = unwrap(reg.inputs)
        role = (inputs.get(where) or {}).get("role")
        if old == new or role not in HOST_ROLES:
            continue
        if path == script and (reg.type in (GCE_INSTANCE, AZURE_VM) or inputs.get("userDataReplaceOnChange")):
            how = "its boot script changes, which replaces the host (the old one deleted first)"
        elif path == size:
            how = f"its {size} changes from {old} to {new}, which stops and starts the host"
        elif path in HOST_REPLACING.get(reg.type, {}):
            how = f"its {path} changes, which {HOST_REPLACING[reg.type][path]}"
        else:
            continue
        notes.append(f"{reg.name}: {how}; this {HOST_ROLES[role]}: apply it when few are in progress")
    return notes


def _edge_pod_notes(deployed: list[Registration], planned: list[Registration]) -> list[str]:
    """The edge's pod holds its node's ports, so its Deployment is `Recreate`: a new pod template (a new image,
    a trunk's edit: a new Secret) stops the old pod, its calls with it, before the new one starts."""
    notes = []
    for reg, _, old, new in changed(deployed, planned, [(DEPLOYMENT, "spec.template")]):
        inputs = unwrap(reg.inputs)
        label, value = K8S_EDGE_LABEL
        recreate = ((inputs.get("spec") or {}).get("strategy") or {}).get("type") == "Recreate"
        if old != new and recreate and ((inputs.get("metadata") or {}).get("labels") or {}).get(label) == value:
            notes.append(f"{reg.name}: its pod template changes, which stops its pod before the new one starts "
                         f"(Recreate); this {HOST_ROLES['sip-edge']}: apply it when few are in progress")
    return notes
