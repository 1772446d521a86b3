"""Review of `aciCells` in the Azure stack (stacks/azure/identity.py, stacks/config/aci_cells.py): least
privilege in a cell's subscription, each test a finding that fails on the current code.

- A cell's subnet join: the stack's own subnet gets a role holding `subnets/join/action` alone, so the
  dispatcher's token cannot touch the subnet; for a cell's subnet the note tells the operator to assign
  "Network Contributor" there, whose `Microsoft.Network/*` also writes and deletes that subnet (its
  delegation, NSG and route table links) (learn.microsoft.com/azure/role-based-access-control/
  built-in-roles/networking#network-contributor). The stack's own join role, made assignable on the
  cell's subnet as the launch role is on the cell's resource group, is all a launch needs.
- The launch policy: the stack assigns its Deny rule (the bots' images by digest, their subnet, no public
  address) on its own resource group only, so in a cell the dispatcher's token may make any container
  group: any image, a public address, outside the cell's subnet. A policy definition made in a
  subscription can be assigned there (the stack can make one per cell subscription, as it makes the
  launch role's assignment there), so a cell need not run without it.
- Removing a cell: the one launch role lists every cell's resource group among its assignable scopes, so
  the `up` that drops a cell updates that role (a surviving resource: updated before the removed cell's
  assignment is deleted, as Pulumi deletes last) while the assignment is still there, and ARM refuses
  it, 400 `RoleScopeBeingRemovedContainsAssignments` ("Delete these assignments before removing the
  scope", github.com/Azure/bicep/issues/17145): the `up` fails until the operator deletes the assignment
  by hand. A role of its own per cell is deleted after its assignment.
(Fixed: each cell's launch role and, with its own subnet, join role are its own: stacks/azure/identity.py.)
"""

from __future__ import annotations

import json

import pytest

from stacks.azure import identity
from stacks.tools.mocks import unwrap
from tests.infra.azure.test_aci_cells import CELLS, SUBNET_B, cells_run, launch_role
from tests.infra.azure.test_stack import ASSIGNMENT, ROLE
from tests.infra.conftest import StackRunner

POLICY_ASSIGNMENT = "azure-native:authorization:PolicyAssignment"
POLICY_DEFINITION = "azure-native:authorization:PolicyDefinition"


def test_the_dispatcher_joins_a_cells_subnet_with_the_join_action_alone(
        stack: StackRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    warned: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda message, *args, **kwargs: warned.append(str(message)))
    run = cells_run(stack)
    assert not [w for w in warned if "Network Contributor" in w]
    # A join role of the cell's own (the stack's, made assignable there, would be changed by the cell's
    # removal while its assignment exists: see the last test), holding the join action alone.
    on_subnet = [unwrap(a.inputs)["roleDefinitionId"] for a in run.of_type(ASSIGNMENT)
                 if unwrap(a.inputs)["scope"] == SUBNET_B]
    roles = {r.outputs["id"]: unwrap(r.inputs) for r in run.of_type(ROLE)}
    assert on_subnet and all(roles[role]["permissions"] == [{"actions": list(identity.JOIN_ACTIONS),
                                                             "notActions": []}] for role in on_subnet)


def test_the_launch_policy_holds_in_each_cells_resource_group(stack: StackRunner) -> None:
    run = cells_run(stack)
    scopes = {unwrap(a.inputs)["scope"].lower() for a in run.of_type(POLICY_ASSIGNMENT)}
    for cell in CELLS:
        scope = f"/subscriptions/{cell['subscription_id']}/resourceGroups/{cell['resource_group']}"
        assert scope.lower() in scopes, scope
    # Each cell's rule holds its groups to the cell's own subnet (cell a: the stack's bots' subnet).
    rules = {r.name: json.dumps(unwrap(r.inputs)["policyRule"]) for r in run.of_type(POLICY_DEFINITION)}
    assert [name for name, rule in rules.items() if SUBNET_B in rule] == ["voicefleet-azure-test-cell-b"]


def test_removing_a_cell_changes_no_role_that_stays(stack: StackRunner) -> None:
    both, one = cells_run(stack), cells_run(stack, CELLS[:1])
    kept = {r.name: unwrap(r.inputs) for r in one.of_type(ROLE)}
    before = {r.name: unwrap(r.inputs) for r in both.of_type(ROLE) if r.name in kept}
    assert launch_role(one)["roleName"] and launch_role(one, "launch-cell-a")["roleName"]  # both stay
    assert {name: inputs.get("assignableScopes") for name, inputs in before.items()} == {
        name: inputs.get("assignableScopes") for name, inputs in kept.items()}
