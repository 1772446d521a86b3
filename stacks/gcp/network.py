"""Network (GCP): a VPC for bot VMs with egress-only firewall rules.

GCP denies ingress unless a rule allows it, and this network has no ingress rule at all: nothing
listens on a bot. Egress for bots is narrowed to UDP (WebRTC media, STUN/TURN) and TCP 443 (Daily,
the registry, model APIs, logging) with a lowest-priority deny for everything else. The metadata
server (session values, tokens) is always reachable.

With Cloud Run bots (`botRuntime: cloudrun`, `serverless_bots`) the job's tasks join the bots'
subnetwork by Direct VPC egress with the bots' tag, so the same rules hold for them. Their
addresses are internal, so the subnetwork gets a Cloud NAT ("route all traffic through the VPC
network … you must set up Cloud NAT to reach the public internet",
https://cloud.google.com/run/docs/configuring/networking-best-practices), and an egress allow for
TURN over TCP (3478): Cloud Run documents no UDP, so their media goes through the relay over TCP.
Cloud Run keeps its addresses in a subnetwork for 1-2 hours after its job is gone, so then the
network and subnetwork are retained at destroy under fixed names, as the dispatcher's egress
network is (stacks/gcp/egress_network.py; docs/pulumi.md says when to delete them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp.compute as gcp_compute

from stacks.shared.turn_server import LISTEN_PORT

BOT_TAG = "voicefleet-bot"
TURN_PORT = LISTEN_PORT  # the relay's TURN port, over TCP for Cloud Run bots


@dataclass(frozen=True)
class NetworkArgs:
    region: str
    cidr: str
    depends_on: Sequence[pulumi.Resource] = ()
    serverless_bots: bool = False  # the Cloud Run bot job's tasks use this subnetwork (Direct VPC egress)
    name: str | None = None  # a fixed name (the network and subnetwork), for one a destroy leaves


class Network(pulumi.ComponentResource):
    network_id: pulumi.Output[str]
    subnetwork_id: pulumi.Output[str]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:gcp:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        retained = pulumi.ResourceOptions(parent=self, retain_on_delete=args.serverless_bots)
        network = gcp_compute.Network(name, name=args.name, auto_create_subnetworks=False,
                                      description="voicefleet bots",
                                      opts=pulumi.ResourceOptions.merge(retained, pulumi.ResourceOptions(
                                          depends_on=list(args.depends_on))))
        subnetwork = gcp_compute.Subnetwork(name, name=args.name, network=network.id, region=args.region,
                                            ip_cidr_range=args.cidr,
                                            private_ip_google_access=True, opts=retained)
        Rule = tuple[str, int, list[gcp_compute.FirewallAllowArgsDict] | None,
                     list[gcp_compute.FirewallDenyArgsDict] | None]
        egress: tuple[Rule, ...] = (("udp", 1000, [{"protocol": "udp"}], None),
                  ("https", 1000, [{"protocol": "tcp", "ports": ["443"]}], None),
                  ("deny-other", 65534, None, [{"protocol": "all"}]))
        if args.serverless_bots:
            egress += (("turn-tcp", 1000, [{"protocol": "tcp", "ports": [str(TURN_PORT)]}], None),)
            router = gcp_compute.Router(f"{name}-bots", network=network.id, region=args.region, opts=child)
            gcp_compute.RouterNat(f"{name}-bots", router=router.name, region=args.region,
                                  nat_ip_allocate_option="AUTO_ONLY",
                                  source_subnetwork_ip_ranges_to_nat="LIST_OF_SUBNETWORKS",
                                  subnetworks=[{"name": subnetwork.id, "source_ip_ranges_to_nats": ["ALL_IP_RANGES"]}],
                                  opts=child)
        for rule, priority, allows, denies in egress:
            gcp_compute.Firewall(
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
