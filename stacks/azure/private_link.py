"""A private endpoint for one Azure service in the stack's `store` subnet, and the DNS that makes the
service's own name resolve to it inside the virtual network (so TLS checks the name it carries).

Used by the store (Azure Managed Redis) and the Key Vault: each gets an endpoint, a private DNS zone
linked to the network, and the endpoint's zone group (which writes the A record). Whatever must
reach the service through it depends on `ready`: before the zone's link, the network resolves the
service to its public endpoint, which both refuse. SDK read: pulumi_azure_native/network/
private_endpoint.py, private_dns_zone_group.py; privatedns/private_zone.py, virtual_network_link.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_azure_native.network as azure_network
import pulumi_azure_native.privatedns as azure_privatedns


@dataclass(frozen=True)
class PrivateLinkArgs:
    resource_group: pulumi.Input[str]
    location: str
    vnet_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    target_id: pulumi.Input[str]  # the service's resource id
    group_id: str  # the service's sub-resource: "redisEnterprise", "vault"
    zone: str  # its privatelink zone: "privatelink.redis.azure.net", "privatelink.vaultcore.azure.net"
    connection: str  # the endpoint's connection name
    record: str  # the zone config's name inside the zone group
    tags: dict[str, str]


def private_link(name: str, args: PrivateLinkArgs, parent: pulumi.Resource) -> list[pulumi.Resource]:
    """The endpoint, zone, link and zone group; returns what a client must wait for."""
    child = pulumi.ResourceOptions(parent=parent)
    endpoint = azure_network.PrivateEndpoint(
        name,
        resource_group_name=args.resource_group,
        location=args.location,
        subnet={"id": args.subnet_id},
        private_link_service_connections=[{"name": args.connection, "private_link_service_id": args.target_id,
                                           "group_ids": [args.group_id]}],
        tags=args.tags,
        opts=child,
    )
    zone = azure_privatedns.PrivateZone(name, private_zone_name=args.zone, location="global",
                                        resource_group_name=args.resource_group, tags=args.tags, opts=child)
    link = azure_privatedns.VirtualNetworkLink(
        name, private_zone_name=zone.name, resource_group_name=args.resource_group, location="global",
        virtual_network={"id": args.vnet_id}, registration_enabled=False, tags=args.tags, opts=child)
    group = azure_network.PrivateDnsZoneGroup(
        name, private_endpoint_name=endpoint.name, resource_group_name=args.resource_group,
        private_dns_zone_group_name="default",
        private_dns_zone_configs=[{"name": args.record, "private_dns_zone_id": zone.id}], opts=child)
    return [group, link]
