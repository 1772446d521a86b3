"""Network (GCP): a VPC for bot VMs with egress-only firewall rules.

GCP denies ingress unless a rule allows it, and this network has no ingress rule at all: nothing
listens on a bot. Egress for bots is narrowed to UDP (WebRTC media, STUN/TURN) and TCP 443 (Daily,
the registry, model APIs, logging) with a lowest-priority deny for everything else. The metadata
server (session values, tokens) is always reachable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

BOT_TAG = "voicefleet-bot"


@dataclass(frozen=True)
class NetworkArgs:
    region: str
    cidr: str
    depends_on: Sequence[pulumi.Resource] = ()


class Network(pulumi.ComponentResource):
    network_id: pulumi.Output[str]
    subnetwork_id: pulumi.Output[str]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:gcp:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        network = gcp.compute.Network(name, auto_create_subnetworks=False, description="voicefleet bots",
                                      opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)))
        subnetwork = gcp.compute.Subnetwork(name, network=network.id, region=args.region, ip_cidr_range=args.cidr,
                                            private_ip_google_access=True, opts=child)
        Rule = tuple[str, int, list[gcp.compute.FirewallAllowArgsDict] | None,
                     list[gcp.compute.FirewallDenyArgsDict] | None]
        egress: tuple[Rule, ...] = (("udp", 1000, [{"protocol": "udp"}], None),
                  ("https", 1000, [{"protocol": "tcp", "ports": ["443"]}], None),
                  ("deny-other", 65534, None, [{"protocol": "all"}]))
        for rule, priority, allows, denies in egress:
            gcp.compute.Firewall(
                f"{name}-bot-egress-{rule}",
                network=network.id,
                direction="EGRESS",
                priority=priority,
                destination_ranges=["0.0.0.0/0"],
                target_tags=[BOT_TAG],
                allows=allows,
                denies=denies,
                description=f"bots: {rule} out",
                opts=child,
            )
        self.network_id = network.id
        self.subnetwork_id = subnetwork.id
        self.register_outputs({"network_id": self.network_id, "subnetwork_id": self.subnetwork_id})
