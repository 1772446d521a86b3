"""SipEdge (GCP): `python -m sipedge` on one Compute Engine VM with a static external address, as the
AWS stack runs it (stacks/aws/sip_edge.py): RTP takes a port per call, which no load balancer in front
of Cloud Run passes, so the edge has an address of its own (docs/sip.md, "On GCP", has the why of each rule).

Where it lives: a subnetwork of its own (EDGE_CIDR) in the dispatcher's egress network, the one network
Cloud Run's Direct VPC egress reaches; Cloud Run's egress cannot be named by tag or service account in
a rule, so the control port (TCP 5080) admits that subnetwork's range (EGRESS_CIDR) only. Every rule
targets the edge's own service account, not a tag:
- in: UDP 5060 (and TCP `tlsPort` with TLS) from the trunks' `sources`,
  the workers' RTP ports from their `mediaSources`, one rule
  each holding every network (changed in place); nothing else, no SSH;
- out: UDP to the trunks' networks, TCP 443, then a deny of everything else (the metadata server, the
  DNS resolver, is reached whatever the rules say).

Its identity: a service account of its own that may read the edge's secrets (a grant each) and pull
from the stack's repository, nothing project-wide; Shielded VM, OS Login, no project-wide SSH keys; the
edge's user kept from the metadata server but for DNS (stacks/shared/sip_edge_host.py).

Its addresses: a reserved static external address (`protect`ed on a protected stack) and a reserved
internal one (the dispatcher's SIP_EDGE_URL), both kept when the VM is replaced. A changed boot script
replaces the VM, the old one deleted first: its calls in flight end (the plan says so).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp.artifactregistry as gcp_artifactregistry
import pulumi_gcp.compute as gcp_compute
import pulumi_gcp.serviceaccount as gcp_serviceaccount

from stacks.config.sip_edge import CONTROL_PORT, SIP_PORT, SipEdgeSettings, render, tls_rule_mark
from stacks.gcp.relay import DEBIAN_IMAGE
from stacks.gcp.secrets import SecretStore
from stacks.gcp.startup import fetch_function
from stacks.shared import sip_edge_host

SIP_EDGE_ROLE = "sip-edge"  # label `role` (stacks/tools/preflight/replacements.py HOST_ROLES)
EDGE_CIDR = "10.200.1.0/28"  # beside the egress subnetwork's 10.200.0.0/24, in the same network
DISK_GB = 16  # Debian, the dispatcher image and the edge's built on it
# Allow and deny rules' priorities: the deny below every allow of the edge's.
ALLOW_PRIORITY, DENY_PRIORITY = 1000, 65534
# IAM grants take effect "typically [in] 2 minutes, potentially 7 minutes or longer"
# (https://cloud.google.com/iam/docs/access-change-propagation): 9 tries, 2 to 256 s apart, ~8.5 min.
TRIES = 9
# The edge's user may still ask the metadata server for names: it is the VM's DNS resolver.
METADATA_DNS = tuple(f"ip daddr {sip_edge_host.METADATA} {port}" for port in ("udp dport 53", "tcp dport 53"))


@dataclass(frozen=True)
class SipEdgeArgs:
    edge: SipEdgeSettings
    project: str
    region: str
    zone: str
    account_id: str
    network_id: pulumi.Input[str]  # the dispatcher's egress network
    dispatcher_range: str  # the subnetwork Cloud Run's Direct VPC egress sends from
    protect: bool = False  # the stack's `protect`: the address every trunk names


class SipEdge(pulumi.ComponentResource):
    """Made in two steps, as on AWS: the addresses and firewall (before the dispatcher, which is told the
    control URL), then `run` the VM (after it, whose URL the edge is told)."""

    public_ip: pulumi.Output[str]
    private_ip: pulumi.Output[str]
    control_url: pulumi.Output[str]

    def __init__(self, name: str, args: SipEdgeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:gcp:SipEdge", name, None, opts)
        self._name, self._args = name, args
        child = pulumi.ResourceOptions(parent=self)
        edge = args.edge
        self._account = gcp_serviceaccount.Account(name, account_id=args.account_id,
                                                   display_name="voicefleet SIP edge", opts=child)
        self._subnetwork = gcp_compute.Subnetwork(name, network=args.network_id, region=args.region,
                                                  ip_cidr_range=EDGE_CIDR, description="voicefleet SIP edge",
                                                  opts=child)
        self._firewall(edge)
        # Every trunk's origination URI names the external address: a protected stack keeps it from an
        # accidental replace or destroy, as it keeps its data. The internal one the stack re-tells the
        # dispatcher at every `up`.
        self._external = gcp_compute.Address(name, region=args.region, address_type="EXTERNAL",
                                             network_tier="PREMIUM", description="voicefleet SIP edge",
                                             opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
        self._internal = gcp_compute.Address(f"{name}-internal", region=args.region, address_type="INTERNAL",
                                             subnetwork=self._subnetwork.id,
                                             description="voicefleet SIP edge: the dispatcher's SIP_EDGE_URL",
                                             opts=child)
        self.public_ip = self._external.address
        self.private_ip = self._internal.address
        self.control_url = pulumi.Output.concat("http://", self.private_ip, f":{CONTROL_PORT}")

    def _firewall(self, edge: SipEdgeSettings) -> None:
        name, args = self._name, self._args
        low, high = edge.rtp_ports_used
        # Why a range is wider than a /16 (a trunk's opt-in, a credential trunk without sources).
        signalling = sorted({why for why in edge.sources.values() if why})
        media = ["a trunk's allowAnyMediaSource"] if any(edge.media_sources.values()) else []
        ingress = [("sip", "udp", [str(SIP_PORT)], sorted(edge.sources), signalling),
                   ("rtp", "udp", [f"{low}-{high}"], sorted(edge.media_sources), media),
                   # The dispatcher's Cloud Run instances to the control API, and nothing else to it.
                   ("control", "tcp", [str(CONTROL_PORT)], [args.dispatcher_range], [])]
        if edge.key.tls_port is not None:  # SIP over TLS from the trunks' sources alone, as SIP over UDP
            ingress.append(("tls", "tcp", [str(edge.key.tls_port)], sorted(edge.sources), signalling))
        for rule, protocol, ports, ranges, wide in ingress:
            # A range wider than a /16 says why, as the AWS rule's description does; the TLS rule names its port,
            # the one TCP port the policy pack takes from the trunks.
            marks = [tls_rule_mark(edge.key.tls_port)] if rule == "tls" and edge.key.tls_port is not None else []
            marks += wide
            note = f" ({'; '.join(marks)})" if marks else ""
            gcp_compute.Firewall(f"{name}-{rule}", network=args.network_id, direction="INGRESS",
                                 priority=ALLOW_PRIORITY, source_ranges=ranges,
                                 target_service_accounts=[self._account.email],
                                 allows=[{"protocol": protocol, "ports": ports}],
                                 description=f"sip edge: {rule}{note}", opts=pulumi.ResourceOptions(parent=self))
        # UDP out to the trunks alone (SIP to a termination URI or registrar, among their sources; RTP to
        # their media), HTTPS anywhere, nothing else: a compromised edge reaches no other service in the VPC.
        Rule = tuple[str, int, list[str], list[gcp_compute.FirewallAllowArgsDict] | None,
                     list[gcp_compute.FirewallDenyArgsDict] | None]
        egress: list[Rule] = [("udp-out", ALLOW_PRIORITY, edge.udp_egress,
                               [{"protocol": "udp"}], None),
                              ("https-out", ALLOW_PRIORITY, ["0.0.0.0/0"], [{"protocol": "tcp", "ports": ["443"]}],
                               None),
                              ("deny-out", DENY_PRIORITY, ["0.0.0.0/0"], None, [{"protocol": "all"}])]
        if tls_out := edge.tls_egress:  # a sips: URI or registrar is dialled over TLS: its ports, its trunk's sources
            ports = sorted({str(port) for dialled in tls_out.values() for port in dialled})
            egress.append(("tcp-out", ALLOW_PRIORITY, sorted(tls_out), [{"protocol": "tcp", "ports": ports}], None))
        for rule, priority, ranges, allows, denies in egress:
            gcp_compute.Firewall(f"{name}-{rule}", network=args.network_id, direction="EGRESS", priority=priority,
                                 destination_ranges=ranges, target_service_accounts=[self._account.email],
                                 allows=allows, denies=denies, description=f"sip edge: {rule}",
                                 opts=pulumi.ResourceOptions(parent=self))

    def run(self, *, secrets: SecretStore, dispatcher_url: pulumi.Input[str], image: pulumi.Input[str],
            repository_id: pulumi.Input[str]) -> None:
        """The VM: its grants, its boot script and the instance on the edge's two addresses."""
        name, args, edge = self._name, self._args, self._args.edge
        child = pulumi.ResourceOptions(parent=self)
        member = pulumi.Output.concat("serviceAccount:", self._account.email)
        names = edge.secret_names()
        readable = secrets.grant_access("sip-edge", member, names)
        # Artifact Registry grants a repository, not an image: the stack's one repository (the bots'
        # images are in it too, and hold no secret: a bot's keys are Secret Manager's).
        pull = gcp_artifactregistry.RepositoryIamMember(f"{name}-pull", repository=repository_id,
                                                        location=args.region, role="roles/artifactregistry.reader",
                                                        member=member, opts=child)
        versions = [secrets.versions[env].name for env in names]

        def script(values: list[str]) -> str:
            url, private_ip, public_ip, image_ref, refs = values[0], values[1], values[2], values[3], values[4:]
            config = render(edge, dispatcher_url=url, sip_address=private_ip, public_address=public_ip)
            registry = image_ref.split("/", 1)[0]
            steps = sip_edge_host.HostSteps(
                packages="curl", fetch_function=fetch_function(dict(zip(names, refs, strict=True))),
                registry_login=f"token | podman login --username oauth2accesstoken --password-stdin {registry}",
                secret_tries=TRIES, pull_tries=TRIES, metadata_keep=METADATA_DNS, apt_over_https=True)
            return sip_edge_host.edge_boot_script(edge, "gcp", config=config, image=image_ref, steps=steps,
                                                    secrets=names)

        values = [dispatcher_url, self.private_ip, self.public_ip, image, *versions]
        sip_edge_host.refused_now(script, len(values))
        startup = pulumi.Output.all(*values).apply(script)
        gcp_compute.Instance(
            name,
            zone=args.zone,
            machine_type=edge.host_type,
            boot_disk={"initialize_params": {"image": DEBIAN_IMAGE, "size": DISK_GB, "type": "pd-balanced"}},
            network_interfaces=[{"subnetwork": self._subnetwork.id, "network_ip": self._internal.address,
                                 "access_configs": [{"nat_ip": self._external.address, "network_tier": "PREMIUM"}]}],
            service_account={"email": self._account.email, "scopes": ["https://www.googleapis.com/auth/cloud-platform"]},
            # The ForceNew form of the boot script, as the TURN relay's: a change re-creates the VM, which
            # runs it (metadata['startup-script'] would change in place and never reach the running edge).
            metadata_startup_script=startup,
            metadata={"block-project-ssh-keys": "true", "enable-oslogin": "TRUE"},
            labels={"role": SIP_EDGE_ROLE},
            shielded_instance_config={"enable_secure_boot": True, "enable_vtpm": True,
                                      "enable_integrity_monitoring": True},
            allow_stopping_for_update=True,  # a new machineType stops and starts it (the plan says so)
            # Each address is held by one VM at a time: the old edge goes first. It boots once its account
            # may read its secrets and pull (the boot still retries while the grants propagate).
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*readable, pull], delete_before_replace=True),
        )
        self.register_outputs({"public_ip": self.public_ip, "private_ip": self.private_ip})
