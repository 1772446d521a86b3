"""TurnRelay (AWS): coturn on one small EC2 instance with an Elastic IP, in a public subnet.

Ingress is exactly TURN: UDP and TCP 3478, TLS 443 when a certificate is configured, and the UDP
relay range, from anywhere (clients and bots reach it from the internet); nothing else, no SSH.
Egress: UDP (relayed media to the peers), TCP 443 (Secrets Manager) and TCP 80 (Debian's package
mirror). The instance role may read the relay's secrets and
nothing else; IMDSv2 only. `user_data` changes replace the instance (a short relay outage); a newer
Debian image does not (the AMI is taken at creation, docs/pulumi.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws.ec2 as aws_ec2
import pulumi_aws.iam as aws_iam
import pulumi_aws.vpc as aws_vpc

from stacks.aws.iam import assume_role_policy
from stacks.aws.secrets import SecretStore
from stacks.config.turn import TurnSettings
from stacks.shared import turn_server

DEBIAN_OWNER = "136693071363"  # Debian's official AMIs (https://wiki.debian.org/Cloud/AmazonEC2Image)
TURN_TAG = "turn"  # tag `role`; the policy pack checks resources carrying it
SG_DESCRIPTION = "voicefleet TURN relay: TURN ports only"
IMDS = "http://169.254.169.254/latest"
_PRIVATE_IP = (f"curl -sf -H \"X-aws-ec2-metadata-token: $(curl -sf -X PUT {IMDS}/api/token "
               f"-H 'X-aws-ec2-metadata-token-ttl-seconds: 60')\" {IMDS}/meta-data/local-ipv4")


@dataclass(frozen=True)
class TurnRelayArgs:
    turn: TurnSettings
    vpc_id: pulumi.Input[str]
    vpc_cidr: str
    subnet_id: pulumi.Input[str]
    region: str
    secrets: SecretStore
    secret_names: Sequence[str]  # TURN_SHARED_SECRET, then TURN_TLS_CERTIFICATE, TURN_TLS_PRIVATE_KEY


def fetch_function(region: str, refs: dict[str, tuple[str, str]]) -> str:
    cases = "\n".join(f"    {name}) id='{arn}'; version='{version}';;" for name, (arn, version) in refs.items())
    return f"""fetch() {{
  local id version
  case "$1" in
{cases}
  esac
  aws secretsmanager get-secret-value --region {region} --secret-id "$id" --version-id "$version" \\
    --query SecretString --output text
}}"""


def debian_ami(parent: pulumi.Resource) -> pulumi.Output[Any]:
    """Debian 12's newest x86_64 image: taken at a host's creation (its instance ignores `ami` changes)."""
    return aws_ec2.get_ami_output(most_recent=True, owners=[DEBIAN_OWNER], filters=[
        {"name": "name", "values": ["debian-12-amd64-*"]}, {"name": "architecture", "values": ["x86_64"]}],
        opts=pulumi.InvokeOutputOptions(parent=parent))


def debian_host(ami: pulumi.Output[Any], *, volume_gb: int) -> dict[str, Any]:
    """What the stack's hosts share: the image, IMDSv2 only, an encrypted gp3 root volume, and a boot
    script that replaces the host when it changes (it runs once, at the first boot)."""
    return {"ami": ami.id, "user_data_replace_on_change": True,
            "metadata_options": {"http_tokens": "required", "http_endpoint": "enabled",
                                 "http_put_response_hop_limit": 1},
            "root_block_device": {"encrypted": True, "volume_type": "gp3", "volume_size": volume_gb}}


class TurnRelay(pulumi.ComponentResource):
    public_ip: pulumi.Output[str]
    urls: pulumi.Output[list[str]]

    def __init__(self, name: str, args: TurnRelayArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:aws:TurnRelay", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        turn = args.turn
        group = aws_ec2.SecurityGroup(name, vpc_id=args.vpc_id, description=SG_DESCRIPTION,
                                      tags={"Name": name, "role": TURN_TAG}, opts=child)
        low, high = turn.relay_ports
        ingress: list[tuple[str, str, int, int, str]] = [
            ("turn-udp", "udp", turn_server.LISTEN_PORT, turn_server.LISTEN_PORT, "0.0.0.0/0"),
            ("turn-tcp", "tcp", turn_server.LISTEN_PORT, turn_server.LISTEN_PORT, "0.0.0.0/0"),
            ("relay", "udp", low, high, "0.0.0.0/0"),
        ]
        if turn.tls:
            ingress.append(("turns", "tcp", turn_server.TLS_PORT, turn_server.TLS_PORT, "0.0.0.0/0"))
        for rule, protocol, from_port, to_port, cidr in ingress:
            aws_vpc.SecurityGroupIngressRule(f"{name}-in-{rule}", security_group_id=group.id, ip_protocol=protocol,
                                             from_port=from_port, to_port=to_port, cidr_ipv4=cidr,
                                             description=f"turn: {rule}", opts=child)
        for rule, protocol, from_port, to_port in (("udp", "udp", 0, 65535), ("https", "tcp", 443, 443),
                                                   ("apt", "tcp", 80, 80)):
            aws_vpc.SecurityGroupEgressRule(f"{name}-out-{rule}", security_group_id=group.id, ip_protocol=protocol,
                                            from_port=from_port, to_port=to_port, cidr_ipv4="0.0.0.0/0",
                                            description=f"turn: {rule} out", opts=child)

        role = aws_iam.Role(name, assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
                            description="voicefleet TURN relay: read its own secrets", opts=child)
        # The boot script reads the secrets once: the instance starts only after its role may read them.
        readable = args.secrets.grant_read("turn", role, args.secret_names)
        profile = aws_iam.InstanceProfile(name, role=role.name, opts=child)

        ami = debian_ami(self)
        address = aws_ec2.Eip(name, domain="vpc", tags={"Name": name, "role": TURN_TAG}, opts=child)
        refs = [args.secrets.version(env) for env in args.secret_names]

        def script(values: list[Any]) -> str:
            public_ip, flat = values[0], values[1:]
            pairs = {env: (flat[2 * i], flat[2 * i + 1]) for i, env in enumerate(args.secret_names)}
            return turn_server.boot_script(turn, public_ip=public_ip, private_ip_command=_PRIVATE_IP,
                                           fetch_function=fetch_function(args.region, pairs),
                                           secrets=list(args.secret_names), packages=["awscli"])

        user_data = pulumi.Output.all(address.public_ip, *[part for ref in refs for part in ref]).apply(script)
        instance = aws_ec2.Instance(
            name,
            **debian_host(ami, volume_gb=8),
            instance_type=turn.instance_type,
            subnet_id=args.subnet_id,
            vpc_security_group_ids=[group.id],
            iam_instance_profile=profile.name,
            user_data=user_data,
            tags={"Name": name, "role": TURN_TAG},
            # `ami` forces a replacement and the lookup picks Debian's newest image: without this, an
            # unchanged `up` after a Debian release would replace the relay and drop every call.
            # A new image is taken deliberately: `pulumi up --replace <the instance's URN>`.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["ami"],
                                        depends_on=[readable] if readable is not None else []),
        )
        aws_ec2.EipAssociation(name, instance_id=instance.id, allocation_id=address.allocation_id, opts=child)
        host = turn.domain or None
        self.public_ip = address.public_ip
        self.urls = address.public_ip.apply(lambda ip: turn_server.urls(turn, host or ip))
        self.register_outputs({"public_ip": self.public_ip, "urls": self.urls})
