"""What an Azure `pulumi destroy` must leave: a virtual network whose delegated subnets can stay held.

A subnet delegated to Container Apps (`Microsoft.App/environments`) or ACI
(`Microsoft.ContainerInstance/containerGroups`) keeps a service association link after the
environment or the last container group is deleted, reported for hours and up to two days
(microsoft/azure-container-apps#974, microsoft-foundry/foundry-samples#153, MicrosoftDocs/azure-docs#20577);
deleting the network fails meanwhile, and the engine deletes it minutes after the environment. So the
network is `retain_on_delete`, with what its subnets reference (a NAT gateway or security group still
attached to a subnet cannot be deleted either, nor the NAT gateway's address), and its resource group:
pulumi-azure-native deletes a group with everything in it (pulumi/pulumi-azure-native#2522), the
held network included. Issue reports, not provider code: the hold's length is not documented.
"""

from __future__ import annotations

from collections.abc import Iterable

from stacks.tools.mocks import Registration, unwrap

VNET = "azure-native:network:VirtualNetwork"
GROUP = "azure-native:resources:ResourceGroup"
HELD_WITH = ("azure-native:network:NetworkSecurityGroup", "azure-native:network:NatGateway", GROUP)
ADDRESS = "azure-native:network:PublicIPAddress"


def _delegated(vnet: Registration) -> bool:
    return any(subnet.get("delegations") for subnet in unwrap(vnet.inputs).get("subnets") or [])


def _kept(registrations: Iterable[Registration]) -> list[Registration]:
    """Every network with a delegated subnet, and what a destroy must leave with it."""
    regs = list(registrations)
    by_urn = {r.urn: r for r in regs}
    needed: dict[str, Registration] = {}
    for vnet in (r for r in regs if r.type == VNET and _delegated(r)):
        needed[vnet.urn] = vnet
        for held in (by_urn[u] for u in vnet.dependencies if u in by_urn and by_urn[u].type in HELD_WITH):
            needed[held.urn] = held
            needed.update({u: by_urn[u] for u in held.dependencies if u in by_urn and by_urn[u].type == ADDRESS})
    return list(needed.values())


def violations(registrations: Iterable[Registration]) -> list[str]:
    return [f"{reg.type} {reg.name}: a delegated subnet of the network can stay held (service association link) "
            "for hours after the destroy deletes what used it, so deleting this fails the destroy; it needs "
            "retain_on_delete (and deleting later)"
            for reg in _kept(registrations) if not reg.retain_on_delete]


def leftover_notes(registrations: Iterable[Registration], subscription: str) -> list[str]:
    """How to delete what a destroy of this stack leaves, once Azure lets go of the subnets."""
    groups = sorted(str(unwrap(r.inputs).get("resourceGroupName")) for r in _kept(registrations) if r.type == GROUP)
    return [f"`pulumi destroy` leaves resource group {group} with the virtual network, its NAT gateway, address and "
            "security group (a delegated subnet can stay held for hours); an `up` of this stack before it is deleted "
            f"stops with 'cannot create already existing resource'. After the destroy: az group delete -n {group} "
            f"--subscription {subscription} --yes (refused while a subnet is still held: try again later)"
            for group in groups]
