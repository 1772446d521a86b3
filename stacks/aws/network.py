"""Network: a VPC with one public subnet per availability zone, and the bots' security group.

Bots get public IPs in public subnets: WebRTC media leaves directly (a 1:1 address helps ICE), and
there is no NAT gateway to pay for per hour and per GB. Nothing listens on a bot: its security
group has no ingress at all; egress is UDP (media, STUN/TURN) and TCP 443 (Daily, model APIs).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws.ec2 as aws_ec2
import pulumi_aws.vpc as aws_vpc
from pulumi_aws.get_availability_zones import get_availability_zones_output


@dataclass(frozen=True)
class NetworkArgs:
    cidr: str
    az_count: int


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    public_subnet_ids: list[pulumi.Output[str]]
    bot_security_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:aws:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        vpc = aws_ec2.Vpc(name, cidr_block=args.cidr, enable_dns_hostnames=True, enable_dns_support=True,
                          tags={"Name": name}, opts=child)
        # The VPC's default security group allows all traffic between its members; take every rule
        # away so nothing can use it by accident.
        aws_ec2.DefaultSecurityGroup(f"{name}-default", vpc_id=vpc.id, ingress=[], egress=[],
                                     tags={"Name": f"{name}-default"}, opts=child)
        gateway = aws_ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags={"Name": name}, opts=child)
        routes = aws_ec2.RouteTable(f"{name}-public", vpc_id=vpc.id, tags={"Name": f"{name}-public"},
                                    opts=child)
        aws_ec2.Route(f"{name}-public-default", route_table_id=routes.id, destination_cidr_block="0.0.0.0/0",
                      gateway_id=gateway.id, opts=child)

        zones = get_availability_zones_output(state="available", opts=pulumi.InvokeOutputOptions(parent=self))
        # /20 per zone: 4091 addresses, one per concurrent bot task (awsvpc gives each task an ENI).
        blocks = list(ipaddress.ip_network(args.cidr).subnets(new_prefix=20))
        self.public_subnet_ids = []
        for index in range(args.az_count):
            subnet = aws_ec2.Subnet(
                f"{name}-public-{index}",
                vpc_id=vpc.id,
                cidr_block=str(blocks[index]),
                availability_zone=zones.names[index],
                # Public IPs are requested per task (assignPublicIp), not handed to everything.
                map_public_ip_on_launch=False,
                tags={"Name": f"{name}-public-{index}"},
                opts=child,
            )
            aws_ec2.RouteTableAssociation(f"{name}-public-{index}", subnet_id=subnet.id, route_table_id=routes.id,
                                          opts=child)
            self.public_subnet_ids.append(subnet.id)

        bots = aws_ec2.SecurityGroup(f"{name}-bot", vpc_id=vpc.id, description="voicefleet bots: no ingress",
                                     tags={"Name": f"{name}-bot"}, opts=child)
        # Standalone rules only (mixing them with inline rules makes perpetual diffs).
        for rule, protocol, from_port, to_port in (("udp", "udp", 0, 65535), ("https", "tcp", 443, 443)):
            aws_vpc.SecurityGroupEgressRule(
                f"{name}-bot-egress-{rule}",
                security_group_id=bots.id,
                ip_protocol=protocol,
                from_port=from_port,
                to_port=to_port,
                cidr_ipv4="0.0.0.0/0",
                description=f"bots: {rule} out",
                opts=child,
            )
        self.vpc_id = vpc.id
        self.bot_security_group_id = bots.id
        self.register_outputs({"vpc_id": self.vpc_id, "public_subnet_ids": self.public_subnet_ids,
                               "bot_security_group_id": self.bot_security_group_id})
