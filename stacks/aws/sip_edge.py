"""SipEdge (AWS): `python -m sipedge` on one EC2 instance with an Elastic IP, in a public subnet, as an
SBC runs: RTP takes a port per call, which a load balancer's listeners do not pass, so the edge has
an address of its own (docs/sip.md#in-the-cloud).

Ingress is exactly the edge's: SIP (UDP 5060, and TCP `tlsPort` with TLS) from the trunks' `sources`
only, the workers' RTP ports
from the trunks' `mediaSources` only (a carrier's media comes from addresses other than its
signalling's: Twilio publishes one media range, 168.86.128.0/18), each rule named by its network so a
new one creates one rule and moves none, and the control API (TCP 5080; every edge's, for the dispatcher's
status and transfers as well as calls out) from the dispatcher's security group only; no SSH. Egress: UDP to the
trunks' sources and mediaSources (SIP, RTP), DNS and NTP, TCP 443 (the dispatcher's HTTPS
API, ECR, Secrets Manager, PyPI) and TCP 80 (Debian's package mirror). The instance role may read
the edge's secrets and pull the dispatcher image, nothing else; IMDSv2 only.

The edge's private address is a network interface of its own, made before the dispatcher (which is
told SIP_EDGE_URL on it) and kept across replacements of the host, with the Elastic IP on it. A
changed boot script (a new dispatcher image, a changed trunk) replaces the host, deleted first so
the interface is free: its calls in flight end (docs/sip.md, "Not done yet"). A newer Debian image
does not (the AMI is taken at creation, as the TURN relay's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws.ec2 as aws_ec2
import pulumi_aws.iam as aws_iam
import pulumi_aws.vpc as aws_vpc

from stacks.aws.iam import assume_role_policy, policy_document, statement
from stacks.aws.relay import debian_ami, debian_host, fetch_function
from stacks.aws.secrets import SecretStore
from stacks.config.sip_edge import CONTROL_PORT, SIP_PORT, SipEdgeSettings, render, tls_rule_mark
from stacks.shared import sip_edge_host

SIP_EDGE_TAG = "sip-edge"  # tag `role`
SG_DESCRIPTION = "voicefleet SIP edge: SIP from the trunks, RTP, control from the dispatcher"


@dataclass(frozen=True)
class SipEdgeArgs:
    edge: SipEdgeSettings
    vpc_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    region: str
    protect: bool = False  # the stack's `protect`: the address every trunk names, and its interface


def _rule(name: str, group: pulumi.Input[str], rule: str, protocol: str, ports: tuple[int, int],
          parent: pulumi.Resource, *, cidr: str | None = None, other_group: pulumi.Input[str] | None = None,
          egress: bool = False, note: str = "") -> None:
    kind = aws_vpc.SecurityGroupEgressRule if egress else aws_vpc.SecurityGroupIngressRule
    kind(f"{name}-{'out' if egress else 'in'}-{rule}", security_group_id=group, ip_protocol=protocol,
         from_port=ports[0], to_port=ports[1], cidr_ipv4=cidr, referenced_security_group_id=other_group,
         description=f"sip edge: {rule}{note}", opts=pulumi.ResourceOptions(parent=parent))


def _slug(cidr: str) -> str:
    """A rule's name part for its network (54.172.60.0/30 -> 54-172-60-0-30): a rule keeps its name
    whatever other networks come and go."""
    return cidr.replace(".", "-").replace("/", "-").replace(":", "-")


class SipEdge(pulumi.ComponentResource):
    """Made in two steps: the address and its security group (before the dispatcher, which is told the
    control URL), then `run` the host (after it, whose URL the edge is told)."""

    public_ip: pulumi.Output[str]
    private_ip: pulumi.Output[str]
    control_url: pulumi.Output[str]

    def __init__(self, name: str, args: SipEdgeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:aws:SipEdge", name, None, opts)
        self._name, self._args = name, args
        child = pulumi.ResourceOptions(parent=self)
        edge = args.edge
        tags = {"Name": name, "role": SIP_EDGE_TAG}
        self._group = aws_ec2.SecurityGroup(name, vpc_id=args.vpc_id, description=SG_DESCRIPTION, tags=tags,
                                            opts=child)
        for source, why in edge.sources.items():
            # A rule wider than a /16 says why (a trunk's allowAnySource, or a credential trunk without sources):
            # the policy pack refuses one that does not.
            note = f" ({why})" if why else ""
            _rule(name, self._group.id, f"sip-{_slug(source)}", "udp", (SIP_PORT, SIP_PORT), self, cidr=source,
                  note=note)
        for source, wide in edge.media_sources.items():
            # The workers' ports only, from the trunks' media ranges only: PJSIP sends a call's audio to
            # whoever last sent to its port (docs/sip.md#what-the-edge-defends-and-what-needs-a-firewall).
            note = " (trunk allowAnyMediaSource)" if wide else ""
            _rule(name, self._group.id, f"rtp-{_slug(source)}", "udp", edge.rtp_ports_used, self, cidr=source,
                  note=note)
        if edge.key.tls_port is not None:
            # SIP over TLS (tlsPort) from the trunks' sources alone, as SIP over UDP; the host caps each source's
            # connections (sip_edge_host.tls_firewall), which a security group cannot.
            tls = (edge.key.tls_port, edge.key.tls_port)
            for source, why in edge.sources.items():
                note = f" ({'; '.join([tls_rule_mark(edge.key.tls_port), *([why] if why else [])])})"
                _rule(name, self._group.id, f"tls-{_slug(source)}", "tcp", tls, self, cidr=source, note=note)
        # UDP out to the trunks alone (SIP to a termination URI or registrar, among their sources; RTP to
        # their media), so a compromised edge reaches no other UDP service, the VPC's included; DNS and NTP
        # anywhere (the VPC's resolver and Amazon's time service pass any security group anyway). TCP out only to
        # the ports a trunk's sips:/transport=tls URI dials, to that trunk's sources (edge.tls_egress).
        for network in edge.udp_egress:
            _rule(name, self._group.id, f"udp-{_slug(network)}", "udp", (0, 65535), self, cidr=network, egress=True)
        for network, ports in edge.tls_egress.items():
            for port in ports:
                _rule(name, self._group.id, f"tcp-{port}-{_slug(network)}", "tcp", (port, port), self, cidr=network,
                      egress=True)
        for rule, protocol, ports in (("dns", "udp", (53, 53)), ("ntp", "udp", (123, 123)),
                                      ("https", "tcp", (443, 443)), ("apt", "tcp", (80, 80))):
            _rule(name, self._group.id, rule, protocol, ports, self, cidr="0.0.0.0/0", egress=True)
        # Every trunk's origination URI names the Elastic IP: a protected stack keeps it (and the interface
        # holding it) from an accidental replace or destroy, as it keeps its data.
        kept = pulumi.ResourceOptions(parent=self, protect=args.protect)
        self._interface = aws_ec2.NetworkInterface(name, subnet_id=args.subnet_id, security_groups=[self._group.id],
                                                   description="voicefleet SIP edge", tags=tags, opts=kept)
        address = aws_ec2.Eip(name, domain="vpc", tags=tags, opts=kept)
        aws_ec2.EipAssociation(name, network_interface_id=self._interface.id, allocation_id=address.allocation_id,
                               opts=child)
        self.public_ip = address.public_ip
        self.private_ip = self._interface.private_ip
        self.control_url = pulumi.Output.concat("http://", self.private_ip, f":{CONTROL_PORT}")

    def run(self, *, secrets: SecretStore, dispatcher_url: pulumi.Input[str],
            dispatcher_security_group_id: pulumi.Input[str], image: pulumi.Input[str],
            repository_arn: pulumi.Input[str]) -> None:
        """The host: its role, its boot script and the instance on the edge's interface."""
        name, args, edge = self._name, self._args, self._args.edge
        child = pulumi.ResourceOptions(parent=self)
        # The dispatcher's tasks to the control API, and nothing else to it.
        _rule(name, self._group.id, "control", "tcp", (CONTROL_PORT, CONTROL_PORT), self,
              other_group=dispatcher_security_group_id)
        _rule(f"{name}-dispatcher", dispatcher_security_group_id, "control", "tcp", (CONTROL_PORT, CONTROL_PORT),
              self, other_group=self._group.id, egress=True)
        role = aws_iam.Role(name, assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
                            description="voicefleet SIP edge: read its own secrets, pull the dispatcher image",
                            opts=child)
        readable = secrets.grant_read("sip-edge", role, edge.secret_names())
        pull = aws_iam.RolePolicy(f"{name}-pull", role=role.id, policy=policy_document(
            statement(["ecr:GetAuthorizationToken"], "*", sid="RegistryLogin"),  # has no resource-level form
            statement(["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                      repository_arn, sid="PullImage")), opts=child)
        profile = aws_iam.InstanceProfile(name, role=role.name, opts=child)
        ami = debian_ami(self)
        names = edge.secret_names()
        refs = [part for env in names for part in secrets.version(env)]

        def script(values: list[Any]) -> str:
            url, private_ip, public_ip, image_ref, flat = values[0], values[1], values[2], values[3], values[4:]
            pairs = {env: (flat[2 * i], flat[2 * i + 1]) for i, env in enumerate(names)}
            config = render(edge, dispatcher_url=url, sip_address=private_ip, public_address=public_ip)
            registry = image_ref.split("/", 1)[0]
            steps = sip_edge_host.HostSteps(
                packages="awscli", fetch_function=fetch_function(args.region, pairs),
                registry_login=f"aws ecr get-login-password --region {args.region} | podman login --username AWS "
                               f"--password-stdin {registry}")
            return sip_edge_host.edge_boot_script(edge, "aws", config=config, image=image_ref, steps=steps,
                                                    secrets=names)

        values = [dispatcher_url, self.private_ip, self.public_ip, image, *refs]
        sip_edge_host.refused_now(script, len(values))
        user_data = pulumi.Output.all(*values).apply(script)
        aws_ec2.Instance(
            name,
            **debian_host(ami, volume_gb=16),  # the dispatcher image and the edge's built on it
            instance_type=edge.key.instance_type,
            primary_network_interface={"network_interface_id": self._interface.id, "delete_on_termination": False},
            iam_instance_profile=profile.name,
            user_data=user_data,
            tags={"Name": name, "role": SIP_EDGE_TAG},
            # The interface (and its Elastic IP) outlives the host: a replacement waits for the old host to
            # let it go. `ami` is ignored as the relay's is: a Debian release must not replace the edge.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["ami"], delete_before_replace=True,
                                        depends_on=[r for r in (readable, pull) if r is not None]),
        )
        self.register_outputs({"public_ip": self.public_ip, "private_ip": self.private_ip})
