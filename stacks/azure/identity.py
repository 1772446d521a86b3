"""Identities and roles (Azure): what the dispatcher and the bots may do, and nothing more.

- The dispatcher's user-assigned identity may create, read and delete container groups in this
  stack's resource group only (a custom role assigned at that scope, `LAUNCH_ACTIONS`), join the
  bots' subnet with them and no other subnet (a container group in a virtual network needs the
  subnet's join action: `JOIN_ACTIONS`, a role of its own assigned on that subnet alone, so its token
  cannot place a group beside the store's and Key Vault's endpoints or the relay even without the
  launch policy), assign the bots' identity to them and no other (likewise assigned on that identity
  alone), pull from the registry (AcrPull), and read exactly the Key Vault secrets its app
  references (Key Vault Secrets User on each secret, stacks/azure/secrets.py). A custom role cannot
  name a single resource as assignable, so both narrow roles are defined on the resource group and
  assigned on their one resource. With `aciCells` each cell has a launch role of its own, defined,
  assignable and assigned on that cell's resource group alone (not its subscription), and a cell with
  its own subnet a join role of its own, defined on the subnet's resource group and assigned on that
  subnet alone: removing a cell deletes its roles after their assignments and changes no role that
  stays (ARM refuses to drop an assignable scope that still holds an assignment,
  `RoleScopeBeingRemovedContainsAssignments`: github.com/Azure/bicep/issues/17145).
- The bots' identity may pull from the registry (AcrPull on the registry) and do what the team's
  `botPermissions` assigns it, nothing else.

Role and assignment names are GUIDs derived from the subscription and purpose (stacks/azure/naming.py).
Built-in role ids: https://learn.microsoft.com/azure/role-based-access-control/built-in-roles.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_azure_native.authorization as azure_authorization
import pulumi_azure_native.managedidentity as azure_managedidentity

from stacks.azure import naming

ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
KEY_VAULT_SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
LAUNCH_ACTIONS = (
    "Microsoft.ContainerInstance/containerGroups/read",
    "Microsoft.ContainerInstance/containerGroups/write",
    "Microsoft.ContainerInstance/containerGroups/delete",
)
JOIN_ACTIONS = ("Microsoft.Network/virtualNetworks/subnets/join/action",)
ASSIGN_ACTIONS = ("Microsoft.ManagedIdentity/userAssignedIdentities/assign/action",)


def built_in_role(subscription_id: str, role: str) -> str:
    return f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role}"


@dataclass(frozen=True)
class IdentitiesArgs:
    subscription_id: str
    prefix: str
    resource_group: pulumi.Input[str]
    resource_group_id: pulumi.Input[str]
    location: str
    registry_id: pulumi.Input[str]
    bots_subnet_id: pulumi.Input[str]  # the one subnet the dispatcher may put container groups in
    tags: dict[str, str]
    # What the team grants its bot (voicefleet:botPermissions): (role definition GUID, scope) pairs.
    bot_permissions: Sequence[tuple[str, str]] = ()
    # aciCells: each cell's name and resource group scope (/subscriptions/<id>/resourceGroups/<name>) the
    # dispatcher launches in, besides the stack's own (a cell in it is left out: its assignment is the one above).
    cell_scopes: Sequence[tuple[str, str]] = ()
    # aciCells: each cell's name and its own subnet's id (a cell that uses the bots' subnet is left out).
    cell_subnets: Sequence[tuple[str, str]] = ()


class Identities(pulumi.ComponentResource):
    dispatcher: azure_managedidentity.UserAssignedIdentity
    bot: azure_managedidentity.UserAssignedIdentity
    grants: list[azure_authorization.RoleAssignment]

    def __init__(self, name: str, args: IdentitiesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:azure:Identities", name, None, opts)
        self._name, self._args = name, args
        child = pulumi.ResourceOptions(parent=self)
        common: dict[str, Any] = {"resource_group_name": args.resource_group, "location": args.location,
                                  "tags": args.tags}
        self.dispatcher = azure_managedidentity.UserAssignedIdentity(
            f"{name}-dispatcher", resource_name_=f"{args.prefix}-dispatcher", **common, opts=child)
        self.bot = azure_managedidentity.UserAssignedIdentity(
            f"{name}-bot", resource_name_=f"{args.prefix}-bot", **common, opts=child)
        # A custom role's assignable scopes may be resource groups, not single resources: these two are
        # defined on the group, and assigned on the bots' identity and the bots' subnet alone.
        assign = self._role("assign-bot", "voicefleet bot identity assigner", ASSIGN_ACTIONS, args.resource_group_id)
        join = self._role("join-bots", "voicefleet bot subnet joiner", JOIN_ACTIONS, args.resource_group_id)
        join_grant = self.assign("dispatcher-join-bots", self.dispatcher, join.id, args.bots_subnet_id)
        # On a stack whose launch role still holds the join action, the `up` that moves it to the subnet
        # grants it there before taking it off the role: a launch in between keeps its subnet join.
        launch = self._role("launch", "voicefleet bot launcher", LAUNCH_ACTIONS, args.resource_group_id,
                            after=[join_grant])
        self.grants = [
            self.assign("dispatcher-launch", self.dispatcher, launch.id, args.resource_group_id),
            # Each cell's own roles, named after it, so adding or removing one leaves the others in place.
            *(self.assign(f"dispatcher-launch-cell-{cell}", self.dispatcher, self._role(
                f"launch-cell-{cell}", f"voicefleet bot launcher, cell {cell}", LAUNCH_ACTIONS, scope).id, scope)
              for cell, scope in args.cell_scopes),
            *(self.assign(f"dispatcher-join-cell-{cell}", self.dispatcher, self._role(
                f"join-cell-{cell}", f"voicefleet bot subnet joiner, cell {cell}", JOIN_ACTIONS,
                subnet.split("/providers/", 1)[0]).id, subnet)
              for cell, subnet in args.cell_subnets),
            join_grant,
            self.assign("dispatcher-assign-bot", self.dispatcher, assign.id, self.bot.id),
            self.assign("dispatcher-pull", self.dispatcher, built_in_role(args.subscription_id, ACR_PULL),
                        args.registry_id),
            self.assign("bot-pull", self.bot, built_in_role(args.subscription_id, ACR_PULL), args.registry_id),
            # Named after what they grant, so adding or removing one leaves the others in place.
            *(self.assign(f"bot-permission-{hashlib.sha256(f'{role} {scope}'.encode()).hexdigest()[:8]}", self.bot,
                          built_in_role(args.subscription_id, role), scope) for role, scope in args.bot_permissions),
        ]
        self.register_outputs({"dispatcher": self.dispatcher.id, "bot": self.bot.id})

    def _role(self, purpose: str, title: str, actions: tuple[str, ...], scope: pulumi.Input[str],
              after: Sequence[pulumi.Resource] = ()) -> azure_authorization.RoleDefinition:
        """A custom role defined on `scope`, a resource group (of any subscription of the tenant: a
        cell's), its only assignable scope."""
        args = self._args
        return azure_authorization.RoleDefinition(
            f"{self._name}-{purpose}",
            role_definition_id=naming.guid(args.subscription_id, f"{args.prefix}/role/{purpose}"),
            # Unique per tenant: the prefix and the subscription's tail, for a stack name in two subscriptions.
            role_name=f"{title} ({args.prefix}, {naming.tail(args.subscription_id, args.prefix)})",
            description=f"voicefleet {args.prefix}: {title}, this stack only",
            scope=scope,
            assignable_scopes=[scope],
            permissions=[{"actions": list(actions), "not_actions": []}],
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(after)),
        )

    def assign(self, purpose: str, identity: azure_managedidentity.UserAssignedIdentity,
               role_definition_id: pulumi.Input[str], scope: pulumi.Input[str]) -> azure_authorization.RoleAssignment:
        args = self._args
        return azure_authorization.RoleAssignment(
            f"{self._name}-{purpose}",
            role_assignment_name=naming.guid(args.subscription_id, f"{args.prefix}/assignment/{purpose}"),
            principal_id=identity.principal_id,
            # A new identity's service principal can take a while to replicate; declaring its type lets
            # ARM skip the lookup that would fail meanwhile (PrincipalNotFound).
            principal_type="ServicePrincipal",
            role_definition_id=role_definition_id,
            scope=scope,
            opts=pulumi.ResourceOptions(parent=self),
        )
