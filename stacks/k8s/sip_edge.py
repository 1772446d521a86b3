"""SipEdge (Kubernetes): `python -m sipedge` as one pod on its node's network (docs/sip.md#on-kubernetes
has the why of each choice).

RTP takes a port per call, which a Service's ports do not carry, so the pod runs with `hostNetwork` on
the nodes the team keeps for it (`sipEdge.nodeSelector`, `nodeTaint`), its calls sent to
`sipEdge.publicAddress`, which the stack cannot learn. One replica, `Recreate`: two pods never hold the
same node ports. Its namespace is its own, at Pod Security's `privileged` level (the only one that admits
hostNetwork; the stack's others enforce `restricted`).

It runs the edge's image (stacks/k8s/sip_edge_image.py: the dispatcher's with PJSIP's wheel, and Kamailio when
the edge runs its front, from the Containerfile the VM hosts build), by digest, with the edge's command: several
workers behind Kamailio on the SIP port, each on its own loopback SIP port and its share of the RTP range, as on
a VM. Before it, an init container (sipedge/node_fence.py) stops the pod on a node whose credentials or daemons
the edge's user reaches, as the nftables table in docs/sip.md#on-kubernetes refuses them.

Its file (stacks/config/sip_edge.py `render`) sits in a Secret beside the edge's secrets, which reach the
container as `secretKeyRef`s; the file names only the variable the node's address arrives in (the
downward API's status.hostIP). A ServiceAccount of its own, no token mounted, non-root, read-only root
file system, no capability, seccomp RuntimeDefault.

The dispatcher reaches the control API through a ClusterIP Service (a stable name wherever the pod
runs), and the edge the dispatcher at its public HTTPS URL: a hostNetwork pod sends from its node's
address, which the dispatcher's NetworkPolicy does not admit, and in the cluster the call would be plain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pulumi
import pulumi_kubernetes as k8s

from sipedge.worker_place import WORKER_HOST
from stacks.config.reader import SettingsError
from stacks.config.sip_edge import CONTROL_PORT, SIP_PORT, SipEdgeSettings, render
from stacks.config.sip_edge_nodes import NODE_ADDRESS_VARIABLE, taint
from stacks.k8s.dispatcher import drained_rollout_wait, evict_note
from stacks.k8s.pull_secret import PullSecrets
from stacks.k8s.sip_edge_admission import SipEdgeAdmission
from stacks.k8s.sip_edge_admission import policy_spec as admission_spec
from stacks.shared.sip_edge_host import CONFIG, EDGE_UID, stop_seconds

NAME = "sip-edge"
CONTROL_SERVICE = f"{NAME}-control"
EDGE_COMMAND = ["/usr/bin/tini", "--", "python", "-m", "sipedge"]
CONFIG_FOLDER, CONFIG_KEY = CONFIG.rsplit("/", 1)  # where the image's SIP_EDGE_CONFIG names the file
SCRATCH = "/tmp"  # noqa: S108 - an emptyDir of the pod's own, its one writable folder: Kamailio's files (TMPDIR)
# Per worker and per call (docs/sip.md#capacity: ~65 MB and ~0.8 % of a core a worker idle, 1.2-1.8 % of a core a
# call), with room for Python and PJSIP's own threads; and the front's: the supervisor, and Kamailio's 64 MB of
# shared memory and its processes' own. The CPU limit is whole cores above the request: a throttled media thread
# is heard.
CPU_BASE_MILLICORES, CPU_WORKER_MILLICORES, CPU_CALL_MILLICORES = 200, 10, 20
MEMORY_WORKER_MIB, MEMORY_FRONT_MIB = 256, 256
FENCE_RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "64Mi"}}
NAMESPACE_LIMIT = 63  # a namespace's name is a DNS label


@dataclass(frozen=True)
class SipEdgeArgs:
    edge: SipEdgeSettings
    namespace: str  # its own (namespace_of): Pod Security `restricted`, enforced on the stack's, refuses hostNetwork
    image: pulumi.Input[str]  # the edge's (stacks/k8s/sip_edge_image.py), by digest
    dispatcher_url: pulumi.Input[str]  # its public HTTPS URL
    labels: dict[str, str]
    pull_secrets: PullSecrets | None = None  # the registry's credentials, when the stack has them


def _annotations(notes: dict[str, str]) -> dict[str, dict[str, str]]:
    """A pod template's annotations, none when there are none (an empty map would be a new template)."""
    return {"annotations": notes} if notes else {}


def namespace_of(dispatcher_namespace: str) -> str:
    """`<dispatcher namespace>-sip-edge`, refused at preview past a namespace's 63 characters."""
    name = f"{dispatcher_namespace}-{NAME}"
    if len(name) > NAMESPACE_LIMIT:
        raise SettingsError(f"Invalid stack configuration: k8sDispatcherNamespace: the SIP edge's namespace, {name}, "
                            f"is longer than a namespace's {NAMESPACE_LIMIT} characters: shorten it to "
                            f"{NAMESPACE_LIMIT - len(NAME) - 1} or fewer (docs/sip.md#on-kubernetes)")
    return name


def control_url_of(namespace: str) -> str:
    """The edge's control API, by its Service's name: known before anything exists (the dispatcher's deploy does not
    wait on the Service, and the edge's credentials are derived for it)."""
    return f"http://{CONTROL_SERVICE}.{namespace}.svc:{CONTROL_PORT}"


def sip_edge_ranges(edge: SipEdgeSettings | None) -> list[str]:
    """The edge's public address as a range the bots' egress leaves out (their egress is the internet)."""
    return [] if edge is None or edge.key.public_address is None else [f"{edge.key.public_address}/32"]


def node_firewall(edge: SipEdgeSettings) -> list[str]:
    """What the edge's nodes' firewall (their security group, VPC firewall or host rules) must hold: a
    NetworkPolicy does not reach a pod on its node's network with most network plugins, so the stack
    makes none, and says what to make instead."""
    low, high = edge.rtp_ports_used
    rules = [f"in: UDP {SIP_PORT} from {', '.join(edge.sources)} only (the trunks' signalling)",
             f"in: UDP {low}-{high} from {', '.join(edge.media_sources)} only (the trunks' media)",
             f"in: TCP {CONTROL_PORT} from the cluster's pod and node ranges only, never the internet or the trunks "
             "(the control API)"]
    rules.append(f"out: uid {EDGE_UID} to 169.254.169.254, 168.63.129.16, 127.0.0.0/8, fd00:ec2::254 and ::1 refused "
                 "(the node's cloud credentials and daemons), as the nftables table in docs/sip.md#on-kubernetes does: "
                 "the edge's pod does not start on a node where any answers")
    if edge.front:
        first, last = edge.worker_sip_ports[0], edge.worker_sip_ports[-1]
        low, high = edge.worker_control_ports[0], edge.worker_control_ports[-1]
        rules.append(f"out: uid {EDGE_UID} to {WORKER_HOST} admitted before that refusal on UDP {first}-{last} "
                     f"(Kamailio to its workers) and TCP {low}-{high} (the edge to its workers' control APIs), as "
                     "that table's front lines do")
    return rules


def resources(edge: SipEdgeSettings) -> dict[str, dict[str, str]]:
    """Requests per worker and per call, and for the front when it runs; limits the same memory and whole cores."""
    memory = f"{MEMORY_WORKER_MIB * edge.key.workers + (MEMORY_FRONT_MIB if edge.front else 0)}Mi"
    millicores = CPU_BASE_MILLICORES + CPU_WORKER_MILLICORES * edge.key.workers + CPU_CALL_MILLICORES * edge.calls
    cores = -(-millicores // 1000)
    return {"requests": {"cpu": f"{millicores}m", "memory": memory}, "limits": {"cpu": str(cores), "memory": memory}}


def ports(edge: SipEdgeSettings) -> list[dict[str, Any]]:
    """What the pod binds of its node's (hostNetwork: each a host port the scheduler keeps to one pod a node): SIP,
    the front's when it runs; each worker's SIP port and control API on loopback behind it; the control API."""
    workers = [{"name": f"worker-{index}", "container_port": port, "host_ip": WORKER_HOST, "protocol": "UDP"}
               for index, port in enumerate(edge.worker_sip_ports)]
    controls = [{"name": f"worker-{index}-ctl", "container_port": port, "host_ip": WORKER_HOST, "protocol": "TCP"}
                for index, port in enumerate(edge.worker_control_ports)]
    return [{"name": "sip", "container_port": SIP_PORT, "protocol": "UDP"}, *workers, *controls,
            {"name": "control", "container_port": CONTROL_PORT, "protocol": "TCP"}]


def node_placement(edge: SipEdgeSettings) -> dict[str, Any]:
    """The team's nodes (and x86_64 Linux ones: PJSIP's wheel and the image are), tolerating their taint."""
    found = taint(edge.key.node_taint)
    return {"node_selector": {**edge.key.node_selector, "kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux"},
            **({"tolerations": [found.toleration()]} if found is not None else {})}


def container_hardening() -> dict[str, Any]:
    return {"allow_privilege_escalation": False, "read_only_root_filesystem": True, "run_as_non_root": True,
            "capabilities": {"drop": ["ALL"]}}


def node_fence(edge: SipEdgeSettings | None = None) -> list[str]:
    """The init container's command: sipedge/node_fence.py, which exits non-zero, naming the nftables
    table in docs/sip.md#on-kubernetes, if the node's metadata service, wireserver or a loopback daemon answers;
    and, for an `edge` whose front runs, if its workers' own loopback ports are refused to it."""
    command = ["/usr/local/bin/python", "-m", "sipedge.node_fence"]
    if edge is None or not edge.front:
        return command
    sip, control = edge.worker_sip_ports, edge.worker_control_ports
    return [*command, "--admitted", f"udp:{sip[0]}-{sip[-1]}", "--admitted", f"tcp:{control[0]}-{control[-1]}"]


class SipEdge(pulumi.ComponentResource):
    control_url: str
    secret_name: pulumi.Output[str]

    def __init__(self, name: str, args: SipEdgeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:k8s:SipEdge", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        edge = args.edge
        assert edge.key.public_address is not None  # stacks/config/sip_edge_nodes.py requires it
        nodes = ", ".join(f"{k}={v}" for k, v in sorted(edge.key.node_selector.items()))
        pulumi.log.info(f"SIP edge: the firewall of the nodes labelled {nodes} must hold (the stack cannot make it): "
                        + "; ".join(node_firewall(edge)))
        selector = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/instance": args.labels["voicefleet.io/stack"]}
        grace = stop_seconds(edge.drain_seconds)
        labels = {**args.labels, **selector}
        # A namespace of its own: hostNetwork is allowed by Pod Security's `privileged` level alone, and the stack's
        # namespaces enforce `restricted`; audited against `restricted` still, so the exception stays in sight.
        namespace = k8s.core.v1.Namespace(name, metadata={"name": args.namespace, "labels": {
            **args.labels, "pod-security.kubernetes.io/enforce": "privileged",
            "pod-security.kubernetes.io/audit": "restricted"}}, opts=child).metadata.name
        pull = None if args.pull_secrets is None else args.pull_secrets.another(NAME, namespace)
        account = k8s.core.v1.ServiceAccount(
            name, metadata={"name": NAME, "namespace": namespace, "labels": labels},
            automount_service_account_token=False, image_pull_secrets=None if pull is None else [{"name": pull}],
            opts=child)
        config = pulumi.Output.from_input(args.dispatcher_url).apply(lambda url: render(
            edge, dispatcher_url=url, sip_address=None, public_address=str(edge.key.public_address),
            address_variable=NODE_ADDRESS_VARIABLE))
        # Named by Pulumi: a changed file or secret is a new Secret, and so a new pod that reads it. Its own secrets
        # and the credentials derived for its control URL: never the dispatcher's SIP_EDGE_SECRET.
        own = {**edge.secrets, **edge.credentials(control_url_of(args.namespace))}
        data: dict[str, pulumi.Input[str]] = {CONFIG_KEY: config, **{
            variable: pulumi.Output.secret(value) for variable, value in sorted(own.items())}}
        secret = k8s.core.v1.Secret(name, metadata={"namespace": namespace, "labels": labels}, type="Opaque",
                                    string_data=data, opts=child)
        self.secret_name = secret.metadata.name
        # The image's ENV names the file (SIP_EDGE_CONFIG) and PJSIP's folder (PYTHONPATH); TMPDIR is the scratch
        # volume, where the edge's front writes kamailio.cfg and Kamailio its runtime files (its -Y and -w).
        env = [{"name": "TMPDIR", "value": SCRATCH},
               {"name": NODE_ADDRESS_VARIABLE, "value_from": {"field_ref": {"field_path": "status.hostIP"}}},
               *({"name": variable, "value_from": {"secret_key_ref": {"name": secret.metadata.name, "key": variable}}}
                 for variable in sorted(own))]
        pod = {
            "service_account_name": account.metadata.name,
            "automount_service_account_token": False,
            "host_network": True,
            # The cluster's resolver, as the dispatcher's pods have it (a hostNetwork pod's default is the node's).
            "dns_policy": "ClusterFirstWithHostNet",
            "enable_service_links": False,
            # Its drain and its stop (stacks/shared/sip_edge_host.py): a rollout's or a node drain's SIGTERM lets the
            # calls in flight end while new ones go to the trunk's next route.
            "termination_grace_period_seconds": grace,
            # fsGroup: the kubelet writes a Secret volume's files as root, and gives them the pod's group only for
            # an fsGroup; without it the edge could not read its 0440 file.
            "security_context": {"run_as_non_root": True, "run_as_user": EDGE_UID, "run_as_group": EDGE_UID,
                                 "fs_group": EDGE_UID, "seccomp_profile": {"type": "RuntimeDefault"}},
            **node_placement(edge),
            "volumes": [{"name": "config", "secret": {"secret_name": secret.metadata.name, "default_mode": 0o440,
                                                      "items": [{"key": CONFIG_KEY, "path": CONFIG_KEY}]}},
                        {"name": "tmp", "empty_dir": {"size_limit": "64Mi"}}],
            "init_containers": [{
                # First, as the edge's user on its node's network: no edge on a node whose credentials it reaches.
                "name": "node-fence", "image": args.image, "command": node_fence(edge),
                "resources": FENCE_RESOURCES, "security_context": container_hardening()}],
            "containers": [{
                "name": NAME, "image": args.image, "command": EDGE_COMMAND,
                "env": env, "ports": ports(edge), "resources": resources(edge),
                "volume_mounts": [{"name": "config", "mount_path": CONFIG_FOLDER, "read_only": True},
                                  {"name": "tmp", "mount_path": SCRATCH}],
                "security_context": container_hardening()}],
        }
        # Nothing else runs in the privileged namespace: admission holds its pods to this one's spec.
        commands = [EDGE_COMMAND, node_fence(edge)]
        policy = SipEdgeAdmission(f"{name}-admission", f"{args.namespace}-own-pod-only", pulumi.Output.from_input(
            args.image).apply(lambda image: admission_spec(args.namespace, image, commands, EDGE_UID)),
            labels, opts=child)
        k8s.apps.v1.Deployment(name, metadata={"name": NAME, "namespace": namespace, "labels": labels},
                               spec=cast(k8s.apps.v1.DeploymentSpecArgsDict, {
                                   "replicas": 1, "selector": {"match_labels": selector},
                                   "strategy": {"type": "Recreate"},
                                   "template": {"metadata": {"labels": labels, **_annotations(evict_note(grace))},
                                                "spec": pod}}),
                               # After the policy that admits its image: a new digest changes both, and the
                               # pod Recreate makes would be refused until the policy's update lands.
                               opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(
                                   depends_on=[policy], custom_timeouts=drained_rollout_wait(grace))))
        # The control API, every edge's (the dispatcher's status, transfers, calls out). Not awaited
        # (pulumi-kubernetes' `pulumi.com/skipAwait`): its await would hold the `up` until the edge's pod is
        # Ready, which the Deployment's own await reports already.
        k8s.core.v1.Service(f"{name}-control", metadata={
            "name": CONTROL_SERVICE, "namespace": namespace, "labels": labels,
            "annotations": {"pulumi.com/skipAwait": "true"}}, spec={
            "type": "ClusterIP", "selector": selector,
            "ports": [{"name": "control", "port": CONTROL_PORT, "target_port": "control", "protocol": "TCP"}]},
            opts=child)
        self.control_url = control_url_of(args.namespace)
        self.register_outputs({})
