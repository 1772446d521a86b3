"""EgressNetwork (GCP): the VPC the Cloud Run dispatcher reaches its coordination store through.

Cloud Run's Direct VPC egress reserves addresses (`serverless-ipv4-…`) in the subnetwork it uses
and keeps them for 1-2 hours after the service is deleted: "After you delete or move your Cloud Run
resources, wait 1–2 hours for Cloud Run to release the IPs before you delete the subnet"
(https://cloud.google.com/run/docs/configuring/vpc-direct-vpc). A `pulumi destroy` deletes the
service and then, minutes later, the subnetwork and its network, which Compute refuses
(`resourceInUseByAnotherResource`). So the dispatcher's egress (and Memorystore's Private Service
Connect endpoints beside it) get a network of their own that a destroy leaves in place
(`retain_on_delete`), and the bots' network, which nothing of Cloud Run touches, is deleted as
before. Delete the retained pair once Cloud Run has let go (docs/pulumi.md). A network of its own,
never peered: its range cannot collide with the bots' subnetwork. Named, not generated: with
generated names every destroy and `up` would leave one more network behind (a project holds 15
VPC networks by default); with a fixed one, an `up` before the leftover is deleted stops with
`alreadyExists`, naming it. The SIP edge (stacks/gcp/sip_edge.py) has a subnetwork of its own in
this network, the one its control API is reached in; a destroy deletes that one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp.compute as gcp_compute

# Cloud Run needs a /26 or larger and reserves addresses in blocks of 16; the store's endpoints take two.
EGRESS_CIDR = "10.200.0.0/24"


@dataclass(frozen=True)
class EgressNetworkArgs:
    region: str
    name: str  # the network's and the subnetwork's name (the stack's prefix + "-egress")
    depends_on: Sequence[pulumi.Resource] = ()


class EgressNetwork(pulumi.ComponentResource):
    network_id: pulumi.Output[str]
    subnetwork_id: pulumi.Output[str]
    network_name: pulumi.Output[str]  # what to delete once a destroy has left it (docs/pulumi.md)
    subnetwork_name: pulumi.Output[str]

    def __init__(self, name: str, args: EgressNetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:gcp:EgressNetwork", name, None, opts)
        kept = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on), retain_on_delete=True)
        network = gcp_compute.Network(name, name=args.name, auto_create_subnetworks=False,
                                      description="voicefleet dispatcher egress to its store", opts=kept)
        subnetwork = gcp_compute.Subnetwork(name, name=args.name, network=network.id, region=args.region,
                                            ip_cidr_range=EGRESS_CIDR, opts=kept)
        self.network_id, self.subnetwork_id = network.id, subnetwork.id
        self.network_name, self.subnetwork_name = network.name, subnetwork.name
        self.register_outputs({"network_id": self.network_id, "subnetwork_id": self.subnetwork_id})
