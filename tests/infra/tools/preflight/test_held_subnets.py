"""An Azure destroy leaves the network whose delegated subnets Azure can keep holding, with what those
subnets reference and the resource group around them (stacks/tools/preflight/held_subnets.py), and the
plan says how to delete them later."""

from __future__ import annotations

import dataclasses

from stacks.tools.mocks import Run
from stacks.tools.preflight import held_subnets

LEFT = {"azure-native:resources:ResourceGroup", "azure-native:network:VirtualNetwork",
        "azure-native:network:NetworkSecurityGroup", "azure-native:network:NatGateway",
        "azure-native:network:PublicIPAddress"}


def test_a_destroy_leaves_the_network_its_attachments_and_group_and_nothing_else(azure: Run) -> None:
    retained = [r for r in azure.registrations if r.retain_on_delete and r.type.startswith("azure-native:")]
    assert sorted(r.type for r in retained) == sorted(LEFT)
    assert held_subnets.violations(azure.registrations) == []


def test_a_network_a_destroy_would_delete_is_flagged_with_what_it_holds(azure: Run) -> None:
    deleted = [dataclasses.replace(r, retain_on_delete=False) for r in azure.registrations]
    found = held_subnets.violations(deleted)
    assert sorted(line.split(" ", 1)[0] for line in found) == sorted(LEFT)
    assert all("retain_on_delete" in line for line in found)


def test_the_plan_says_how_to_delete_the_group_later(azure: Run) -> None:
    (note,) = held_subnets.leftover_notes(azure.registrations, "0b1f6a2e-3c4d-4e5f-8a9b-0c1d2e3f4a5b")
    group = azure.one("azure-native:resources:ResourceGroup").inputs["resourceGroupName"]
    assert f"az group delete -n {group} --subscription 0b1f6a2e-3c4d-4e5f-8a9b-0c1d2e3f4a5b --yes" in note
