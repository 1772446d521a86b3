"""SipEdge (Kubernetes): `python -m sipedge` as one pod on its node's network (docs/sip.md#on-kubernetes: why).

RTP takes a port per call, which a Service's ports do not carry, so the pod runs with `hostNetwork` on
the nodes the team keeps for it (`sipEdge.nodeSelector`, `nodeTaint`), its calls sent to
`sipEdge.publicAddress`, which the stack cannot learn. One replica, `Recreate`: two pods never hold the
same node ports. Its namespace is its own, at Pod Security's `privileged` level (the only one that admits
hostNetwork; the stack's others enforce `restricted`).

It runs the edge's image (stacks/k8s/sip_edge_image.py: the dispatcher's with PJSIP's wheel, and Kamailio when
the edge runs its front, from the Containerfile the VM hosts build), by digest, with the edge's command: several
workers behind Kamailio on the SIP port, each on its own loopback SIP port and its share of the RTP range, as on
a VM; Kamailio in a container of its own (uid FRONT_UID) with the inbound digest passwords alone, the workers' every
other secret (sipedge/edge_part.py, stacks/k8s/sip_edge_tokens.py). Before them, init containers (sipedge/node_fence.py,
one per user) stop the pod on a node whose credentials or daemons either user reaches.

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
import pulumi_kubernetes.apps as k8s_apps
import pulumi_kubernetes.core as k8s_core

from sipedge.worker_place import WORKER_HOST
from stacks.config.reader import SettingsError
from stacks.config.sip_edge import CONTROL_PORT, SIP_PORT, SipEdgeSettings, inbound_digest_variable, render
from stacks.config.sip_edge_nodes import NODE_ADDRESS_VARIABLE, taint
from stacks.k8s.dispatcher import drained_rollout_wait, evict_note
from stacks.k8s.pull_secret import PullSecrets
from stacks.k8s.sip_edge_admission import SipEdgeAdmission
from stacks.k8s.sip_edge_admission import policy_spec as admission_spec
from stacks.k8s.sip_edge_tokens import edge_tokens
from stacks.shared.sip_edge_host import CONFIG, EDGE_UID, stop_seconds

NAME = "sip-edge"
CONTROL_SERVICE = f"{NAME}-control"
EDGE_COMMAND = ["/usr/bin/tini", "--", "python", "-m", "sipedge"]
# With the front, its two parts apart (sipedge/edge_part.py), each in a container of its own.
FRONT_COMMAND, WORKERS_COMMAND = [*EDGE_COMMAND, "front"], [*EDGE_COMMAND, "workers"]
FRONT_NAME = f"{NAME}-front"
# Kamailio's user, none of the image's: its processes and the workers' cannot read each other's /proc entries.
FRONT_UID = 10002
FRONT_SCRATCH_VOLUME = "front-tmp"  # its own emptyDir: the workers' container mounts none of its files
CONFIG_FOLDER, CONFIG_KEY = CONFIG.rsplit("/", 1)  # where the image's SIP_EDGE_CONFIG names the file
SCRATCH = "/tmp"  # noqa: S108 - an emptyDir of the pod's own, its one writable folder: Kamailio's files (TMPDIR)
# Apart, each container's own /dev/shm, in place of the one tmpfs the runtime mounts in every container of the pod
# (containerd's CRI mounts the sandbox's only where the container asks for no /dev/shm); small: neither part uses it.
SHM, SHM_SIZE = "/dev/shm", "16Mi"  # noqa: S108 - a mount point, not a file made there
SHM_VOLUMES = {NAME: "shm", FRONT_NAME: "front-shm"}
# Per worker and per call (docs/sip.md#capacity: ~65 MB and ~0.8 % of a core a worker idle, 1.2-1.8 % of a core a
# call), with room for Python and PJSIP's own threads; and the front's: the supervisor, and Kamailio's 64 MB of
# shared memory and its processes' own. The CPU limit is whole cores above the request: a throttled media thread
# is heard.
CPU_BASE_MILLICORES, CPU_WORKER_MILLICORES, CPU_CALL_MILLICORES = 200, 10, 20
MEMORY_WORKER_MIB, MEMORY_FRONT_MIB = 256, 256
CPU_FRONT_MILLICORES = 100  # the front's container's share of CPU_BASE_MILLICORES: its supervisor and Kamailio
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
    users = f"uids {EDGE_UID} and {FRONT_UID} (the workers' and Kamailio's)" if edge.front else f"uid {EDGE_UID}"
    rules.append(f"out: {users} to 169.254.169.254, 168.63.129.16, 127.0.0.0/8, fd00:ec2::254 and ::1 refused "
                 "(the node's cloud credentials and daemons), as the nftables table in docs/sip.md#on-kubernetes does: "
                 "the edge's pod does not start on a node where any answers")
    if edge.front:
        first, last = edge.worker_sip_ports[0], edge.worker_sip_ports[-1]
        low, high = edge.worker_control_ports[0], edge.worker_control_ports[-1]
        rules.append(f"out: uid {FRONT_UID} to {WORKER_HOST} admitted before that refusal on UDP {first}-{last} "
                     f"(Kamailio to its workers), uid {EDGE_UID} on TCP {low}-{high} (the edge to its workers' "
                     "control APIs), as that table's front lines do")
    return rules


def _sized(millicores: int, mebibytes: int) -> dict[str, dict[str, str]]:
    """Requests as given; limits the same memory and whole cores (a throttled media thread is heard)."""
    memory, cores = f"{mebibytes}Mi", -(-millicores // 1000)
    return {"requests": {"cpu": f"{millicores}m", "memory": memory}, "limits": {"cpu": str(cores), "memory": memory}}


def resources(edge: SipEdgeSettings) -> dict[str, dict[str, str]]:
    """The edge's, or with the front its workers' container's: per worker and per call, less the front's share."""
    millicores = CPU_BASE_MILLICORES + CPU_WORKER_MILLICORES * edge.key.workers + CPU_CALL_MILLICORES * edge.calls
    return _sized(millicores - (CPU_FRONT_MILLICORES if edge.front else 0), MEMORY_WORKER_MIB * edge.key.workers)


def front_resources() -> dict[str, dict[str, str]]:
    """The front's container's: its supervisor, Kamailio's 64 MB of shared memory and its processes' own."""
    return _sized(CPU_FRONT_MILLICORES, MEMORY_FRONT_MIB)


def ports(edge: SipEdgeSettings) -> list[dict[str, Any]]:
    """What the pod binds of its node's (hostNetwork: each a host port the scheduler keeps to one pod a node): SIP,
    the front's when it runs; each worker's SIP port and control API on loopback behind it; the control API."""
    return [front_port(), *worker_ports(edge)]


def front_port() -> dict[str, Any]:
    return {"name": "sip", "container_port": SIP_PORT, "protocol": "UDP"}


def worker_ports(edge: SipEdgeSettings) -> list[dict[str, Any]]:
    """ports() but the SIP port: the workers' container's, with the front apart."""
    workers = [{"name": f"worker-{index}", "container_port": port, "host_ip": WORKER_HOST, "protocol": "UDP"}
               for index, port in enumerate(edge.worker_sip_ports)]
    controls = [{"name": f"worker-{index}-ctl", "container_port": port, "host_ip": WORKER_HOST, "protocol": "TCP"}
                for index, port in enumerate(edge.worker_control_ports)]
    return [*workers, *controls, {"name": "control", "container_port": CONTROL_PORT, "protocol": "TCP"}]


def node_placement(edge: SipEdgeSettings) -> dict[str, Any]:
    """The team's nodes (and x86_64 Linux ones: PJSIP's wheel and the image are), tolerating their taint."""
    found = taint(edge.key.node_taint)
    return {"node_selector": {**edge.key.node_selector, "kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux"},
            **({"tolerations": [found.toleration()]} if found is not None else {})}


def container_hardening() -> dict[str, Any]:
    return {"allow_privilege_escalation": False, "read_only_root_filesystem": True, "run_as_non_root": True,
            "capabilities": {"drop": ["ALL"]}}


def node_fence(edge: SipEdgeSettings | None = None, *, front: bool = False) -> list[str]:
    """The init container's command: sipedge/node_fence.py, which exits non-zero, naming the nftables
    table in docs/sip.md#on-kubernetes, if the node's metadata service, wireserver or a loopback daemon answers;
    and, for an `edge` whose front runs, if what its user needs of loopback is refused it: the workers' SIP ports
    (Kamailio's, `front`) or those and their control ports (the workers' supervisor's)."""
    command = ["/usr/local/bin/python", "-m", "sipedge.node_fence"]
    if edge is None or not edge.front:
        return command
    sip, control = edge.worker_sip_ports, edge.worker_control_ports
    sips = ["--admitted", f"udp:{sip[0]}-{sip[-1]}"]
    return [*command, *sips] if front else [*command, *sips, "--admitted", f"tcp:{control[0]}-{control[-1]}"]


def _as_front_user() -> dict[str, Any]:
    """A front container's securityContext: Kamailio's user and group, hardened as every container is."""
    return {**container_hardening(), "run_as_user": FRONT_UID, "run_as_group": FRONT_UID}


def _own_shm(container: str, edge: SipEdgeSettings) -> list[dict[str, Any]]:
    """`container`'s own /dev/shm, with the front apart (the pod's IPC namespace is both containers')."""
    return [{"name": SHM_VOLUMES[container], "mount_path": SHM}] if edge.front else []


def _secret_env(secret: pulumi.Input[str], variables: list[str]) -> list[dict[str, Any]]:
    return [{"name": variable, "value_from": {"secret_key_ref": {"name": secret, "key": variable}}}
            for variable in sorted(variables)]


def edge_commands(edge: SipEdgeSettings) -> list[list[str]]:
    """Every command the edge's pod runs: what the admission policy admits."""
    if not edge.front:
        return [EDGE_COMMAND, node_fence(edge)]
    return [WORKERS_COMMAND, FRONT_COMMAND, node_fence(edge), node_fence(edge, front=True)]


def inbound_passwords(edge: SipEdgeSettings) -> list[str]:
    """The inbound digest passwords' variables: the front's container's alone."""
    return [inbound_digest_variable(t.name) for t in edge.key.trunks if t.inbound_digest_username is not None]


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
        namespace = k8s_core.v1.Namespace(name, metadata={"name": args.namespace, "labels": {
            **args.labels, "pod-security.kubernetes.io/enforce": "privileged",
            "pod-security.kubernetes.io/audit": "restricted"}}, opts=child).metadata.name
        pull = None if args.pull_secrets is None else args.pull_secrets.another(NAME, namespace)
        account = k8s_core.v1.ServiceAccount(
            name, metadata={"name": NAME, "namespace": namespace, "labels": labels},
            automount_service_account_token=False, image_pull_secrets=None if pull is None else [{"name": pull}],
            opts=child)
        config = pulumi.Output.from_input(args.dispatcher_url).apply(lambda url: render(
            edge, dispatcher_url=url, sip_address=None, public_address=str(edge.key.public_address),
            address_variable=NODE_ADDRESS_VARIABLE))
        # Named by Pulumi: a changed file or secret is a new Secret, and so a new pod that reads it. Its own secrets
        # and the credentials derived for its control URL: never the dispatcher's SIP_EDGE_SECRET.
        own = {**edge.secrets, **edge.credentials(control_url_of(args.namespace))}
        tokens = edge_tokens(edge, control_url_of(args.namespace)) if edge.front else {}
        data: dict[str, pulumi.Input[str]] = {CONFIG_KEY: config, **{
            variable: pulumi.Output.secret(value) for variable, value in sorted({**own, **tokens}.items())}}
        secret = k8s_core.v1.Secret(name, metadata={"namespace": namespace, "labels": labels}, type="Opaque",
                                    string_data=data, opts=child)
        self.secret_name = secret.metadata.name
        # The image's ENV names the file (SIP_EDGE_CONFIG) and PJSIP's folder (PYTHONPATH); TMPDIR is the scratch
        # volume, where the edge's front writes kamailio.cfg and Kamailio its runtime files (its -Y and -w).
        base = [{"name": "TMPDIR", "value": SCRATCH},
                {"name": NODE_ADDRESS_VARIABLE, "value_from": {"field_ref": {"field_path": "status.hostIP"}}}]
        # Apart, the front's container holds the inbound digest passwords and the workers' every other secret.
        passwords = inbound_passwords(edge) if edge.front else []
        env = [*base, *_secret_env(secret.metadata.name, [*(v for v in own if v not in passwords), *tokens])]
        config_mount = {"name": "config", "mount_path": CONFIG_FOLDER, "read_only": True}
        edge_container = {
            "name": NAME, "image": args.image, "command": WORKERS_COMMAND if edge.front else EDGE_COMMAND,
            "env": env, "ports": worker_ports(edge) if edge.front else ports(edge), "resources": resources(edge),
            "volume_mounts": [config_mount, {"name": "tmp", "mount_path": SCRATCH}, *_own_shm(NAME, edge)],
            "security_context": container_hardening()}
        front = [{
            "name": FRONT_NAME, "image": args.image, "command": FRONT_COMMAND,
            "env": [*base, *_secret_env(secret.metadata.name, [*passwords, *tokens])], "ports": [front_port()],
            "resources": front_resources(),
            "volume_mounts": [config_mount, {"name": FRONT_SCRATCH_VOLUME, "mount_path": SCRATCH},
                              *_own_shm(FRONT_NAME, edge)],
            "security_context": _as_front_user()}] if edge.front else []
        fence = {"name": "node-fence", "image": args.image, "command": node_fence(edge),
                 "resources": FENCE_RESOURCES, "security_context": container_hardening()}
        front_fence = [{"name": "node-fence-front", "image": args.image, "command": node_fence(edge, front=True),
                        "resources": FENCE_RESOURCES, "security_context": _as_front_user()}] if edge.front else []
        scratch = [{"name": name, "empty_dir": {"size_limit": "64Mi"}}
                   for name in ("tmp", *([FRONT_SCRATCH_VOLUME] if edge.front else []))]
        scratch += [{"name": name, "empty_dir": {"medium": "Memory", "size_limit": SHM_SIZE}}
                    for name in (SHM_VOLUMES.values() if edge.front else ())]
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
                        *scratch],
            # First, as each of the edge's users on its node's network: no edge on a node whose credentials it reaches.
            "init_containers": [fence, *front_fence],
            "containers": [edge_container, *front],
        }
        # Nothing else runs in the privileged namespace: admission holds its pods to this one's spec.
        commands = edge_commands(edge)
        uids = [EDGE_UID, *([FRONT_UID] if edge.front else [])]
        policy = SipEdgeAdmission(f"{name}-admission", f"{args.namespace}-own-pod-only", pulumi.Output.from_input(
            args.image).apply(lambda image: admission_spec(args.namespace, image, commands, EDGE_UID, uids)),
            labels, opts=child)
        k8s_apps.v1.Deployment(name, metadata={"name": NAME, "namespace": namespace, "labels": labels},
                               spec=cast(k8s_apps.v1.DeploymentSpecArgsDict, {
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
        k8s_core.v1.Service(f"{name}-control", metadata={
            "name": CONTROL_SERVICE, "namespace": namespace, "labels": labels,
            "annotations": {"pulumi.com/skipAwait": "true"}}, spec={
            "type": "ClusterIP", "selector": selector,
            "ports": [{"name": "control", "port": CONTROL_PORT, "target_port": "control", "protocol": "TCP"}]},
            opts=child)
        self.control_url = control_url_of(args.namespace)
        self.register_outputs({})
