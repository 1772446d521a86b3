"""Network (Azure): one virtual network, its subnets, the bots' egress rules and a NAT gateway.

- `dispatcher`: Container Apps' infrastructure subnet (a /23, delegated to Microsoft.App/environments).
- `bots`: the bots' container groups (delegated to Microsoft.ContainerInstance/containerGroups), behind a
  network security group that allows egress UDP and TCP 443 and denies other egress and every
  inbound flow from the internet, and a NAT gateway with a static address for that egress.
- `store`: the private endpoints (Key Vault's, the store's); `turn`: the TURN relay's VM; `sip`: the SIP
  edge's VM (stacks/azure/sip_edge.py), made whether or not the edge is on: a subnet that went with the
  edge would be removed while the edge's network interface still held it, which Azure refuses.

Subnets are declared inside the virtual network, not as resources of their own: a network
declared without them would remove them on its next update (pulumi/pulumi-azure-native#611).

`pulumi destroy` leaves the network behind (`retain_on_delete`), with what its subnets hold on to
and the resource group around them (stacks/azure/stack.py): a delegated subnet can stay held by its
service association link for hours after the environment or the last container group is deleted
(microsoft/azure-container-apps#974, MicrosoftDocs/azure-docs#20577), and deleting the network then
fails, with the rest of the destroy behind it. The operator deletes the group later (`az group
delete`, docs/pulumi.md; the plan prints it).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, cast

import pulumi
import pulumi_azure_native.network as azure_network

SUBNETS = ("dispatcher", "bots", "store", "turn", "sip")


@dataclass(frozen=True)
class NetworkArgs:
    resource_group: pulumi.Input[str]
    location: str
    cidr: str
    tags: dict[str, str]


def subnet_ranges(cidr: str) -> dict[str, str]:
    """/23 for Container Apps, /22 for the bots, /24 for the private endpoints, /24 for the TURN relay, /28
    for the SIP edge (its one VM: Azure keeps a subnet's first four addresses and its last)."""
    network = ipaddress.ip_network(cidr)
    base = int(network.network_address)
    return {"dispatcher": str(ipaddress.ip_network((base, 23))),
            "bots": str(ipaddress.ip_network((base + 4 * 256, 22))),
            "store": str(ipaddress.ip_network((base + 8 * 256, 24))),
            "turn": str(ipaddress.ip_network((base + 9 * 256, 24))),
            "sip": str(ipaddress.ip_network((base + 10 * 256, 28)))}


def bot_rules() -> list[azure_network.SecurityRuleArgsDict]:
    """Egress UDP (media) and TCP 443 (APIs, TURN over TLS) to the internet, nothing else: not the
    virtual network either (Azure's default rules allow it, and the store's private endpoint is
    there), and no inbound flow."""
    def rule(name: str, priority: int, direction: str, access: str, protocol: str, ports: str,
             destination: str) -> azure_network.SecurityRuleArgsDict:
        return {"name": name, "priority": priority, "direction": direction, "access": access,
                "protocol": protocol, "source_address_prefix": "*", "source_port_range": "*",
                "destination_address_prefix": destination, "destination_port_range": ports}

    return [rule("allow-udp-out", 100, "Outbound", "Allow", "Udp", "*", "Internet"),
            rule("allow-https-out", 110, "Outbound", "Allow", "Tcp", "443", "Internet"),
            rule("deny-other-out", 4000, "Outbound", "Deny", "*", "*", "*"),
            rule("deny-all-in", 4000, "Inbound", "Deny", "*", "*", "*")]


class Network(pulumi.ComponentResource):
    subnet_ids: dict[str, pulumi.Output[str]]
    vnet_id: pulumi.Output[str]
    egress_ip: pulumi.Output[str]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:azure:Network", name, None, opts)
        kept = pulumi.ResourceOptions(parent=self, retain_on_delete=True)  # a destroy leaves them (above)
        common: dict[str, Any] = {"resource_group_name": args.resource_group, "location": args.location,
                                  "tags": args.tags}
        security = azure_network.NetworkSecurityGroup(f"{name}-bots", security_rules=bot_rules(), **common,
                                                      opts=kept)
        address = azure_network.PublicIPAddress(f"{name}-egress", sku={"name": "Standard"},
                                                public_ip_allocation_method="Static", **common, opts=kept)
        nat = azure_network.NatGateway(f"{name}-egress", sku={"name": "Standard"},
                                       public_ip_addresses=[{"id": address.id}], **common, opts=kept)
        ranges = subnet_ranges(args.cidr)
        vnet = azure_network.VirtualNetwork(
            name,
            address_space=cast(azure_network.AddressSpaceArgsDict, {"address_prefixes": [args.cidr]}),
            subnets=cast(Any, [
                {"name": "dispatcher", "address_prefix": ranges["dispatcher"],
                 "delegations": [{"name": "containerapps", "service_name": "Microsoft.App/environments"}]},
                {"name": "bots", "address_prefix": ranges["bots"],
                 "network_security_group": {"id": security.id}, "nat_gateway": {"id": nat.id},
                 "default_outbound_access": False,
                 "delegations": [{"name": "aci", "service_name": "Microsoft.ContainerInstance/containerGroups"}]},
                {"name": "store", "address_prefix": ranges["store"]},
                {"name": "turn", "address_prefix": ranges["turn"]},
                {"name": "sip", "address_prefix": ranges["sip"], "default_outbound_access": False},
            ]),
            **common,
            opts=kept,
        )
        self.vnet_id = vnet.id
        # A subnet's id is its network's id and its name (ARM's nesting), known as soon as the network's.
        self.subnet_ids = {key: pulumi.Output.concat(vnet.id, "/subnets/", key) for key in SUBNETS}
        self.egress_ip = address.ip_address.apply(lambda ip: ip or "")
        self.register_outputs({"vnet_id": self.vnet_id})

