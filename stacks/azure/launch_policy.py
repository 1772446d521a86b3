"""LaunchPolicy (Azure): what a container group in the stack's resource group, or an `aciCells` cell's, may
be, enforced by Azure (a definition of its own in each cell's subscription, assigned on its resource group).

The dispatcher's launch role (stacks/azure/identity.py) may write any container group there, so its
stolen token alone could run any image, on a public address, outside the bots' network rules. An
Azure Policy assignment on that resource group (effect `Deny`: ARM refuses the request, whoever
sends it) refuses every container group that
- runs an image no release names, by digest: `RELEASES` after this `up` or before it (the dispatcher
  it replaces may launch those until it has rolled out; docs/pulumi.md, Releases, Azure);
- runs any other code: a command, a probe's command, init containers, an extension, a container
  group or standby pool profile, a security context, confidential compute, a variable the
  dispatcher does not send (`LAUNCH_VARIABLES` and the deployment's own bot variables);
- brings in anything else: files (`configMap`), a volume, secret references (`secretReferences`,
  `secureValueReference`, `passwordReference`), identity ACLs, DNS servers or a log workspace;
- runs as Spot (`priority`: evictable mid-call) or has a public IP address; or, when the
  request names its containers (a full PUT; the reserve's tags-only PATCH claim names none): is not
  sku Standard with a user-assigned identity in exactly one subnet, the bots'.
The dispatcher's own request (dispatcher/machines/aci/groups.py) passes: tests/infra/azure/
test_launch_policy.py evaluates this rule against the bodies it builds and against forged ones.
No built-in definition fits (the virtual-network one audits `networkProfile.id`). SDK read: pulumi_azure_native/
authorization/policy_definition.py (subscription scope, API 2025-01-01), policy_assignment.py. Aliases:
`az provider show -n Microsoft.ContainerInstance --expand resourceTypes/aliases`; those used here, with
where each was checked, are in `ALIASES` (every one listed there).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_azure_native.authorization as azure_authorization
from pulumi_azure_native.provider import Provider

from dispatcher.machines.aci.groups import LAUNCH_VARIABLES
from stacks.azure import naming

GROUPS = "Microsoft.ContainerInstance/containerGroups"
CONTAINERS = f"{GROUPS}/containers[*]"
VARIABLES = f"{CONTAINERS}.environmentVariables[*]"
SUBNETS = f"{GROUPS}/subnetIds[*]"
CREDENTIALS = f"{GROUPS}/imageRegistryCredentials[*]"
# Every alias the rule names, with where it was checked (tests/support/azure_policy.py maps each onto
# the request body). An alias ARM does not know fails the first `up` (InvalidPolicyAlias): docs/pulumi.md
# ("What only a real subscription can verify") lists any marked UNVERIFIED, and the recovery.
_LISTED = ("listed by `az provider show -n Microsoft.ContainerInstance --expand resourceTypes/aliases` (as "
           "collected in github.com/jeircul/azure-policy-aliases, aliases/Microsoft.ContainerInstance/"
           "containerGroups.md)")
ALIASES: dict[str, str] = {
    **dict.fromkeys((
        CONTAINERS, f"{CONTAINERS}.image", f"{CONTAINERS}.command", f"{CONTAINERS}.livenessProbe",
        f"{CONTAINERS}.readinessProbe", f"{CONTAINERS}.securityContext", f"{CONTAINERS}.configMap",
        VARIABLES, f"{VARIABLES}.name", f"{VARIABLES}.secureValueReference",
        f"{GROUPS}/volumes[*]", f"{GROUPS}/initContainers[*]", f"{GROUPS}/extensions[*]",
        f"{GROUPS}/secretReferences[*]", CREDENTIALS, f"{CREDENTIALS}.passwordReference",
        f"{GROUPS}/ipAddress.type", f"{GROUPS}/dnsConfig", f"{GROUPS}/diagnostics", f"{GROUPS}/sku",
        f"{GROUPS}/priority", f"{GROUPS}/identityAcls", f"{GROUPS}/confidentialComputeProperties",
        f"{GROUPS}/containerGroupProfile", f"{GROUPS}/standbyPoolProfile", SUBNETS, f"{SUBNETS}.id"), _LISTED),
    "identity.type": "Azure Policy's own field (the policy definition structure's `identity.type`)",
}
UNVERIFIED = tuple(alias for alias, source in ALIASES.items() if source.startswith("UNVERIFIED"))


def _any(array: str, where: dict[str, Any] | None = None) -> dict[str, Any]:
    """At least one element of `array` (matching `where`)."""
    return {"count": {"field": array, **({"where": where} if where else {})}, "greater": 0}


def launch_rule(subnet_id: str, images: Sequence[str], variables: Collection[str] = ()) -> dict[str, Any]:
    """The policy rule: `Deny` a container group matching any of the refusals above. `images`: the
    releases' images by digest; `variables`: the deployment's own bot variables, admitted beside
    LAUNCH_VARIABLES."""
    if not images or not all("@sha256:" in image for image in images):
        raise ValueError(f"the launch policy admits images pinned by digest only, got {list(images)!r}")
    pinned = [{"field": f"{CONTAINERS}.image", "in": sorted(images)}]
    exists = {"exists": "true"}
    return {
        "if": {"allOf": [
            {"field": "type", "equals": GROUPS},
            {"anyOf": [
                # Whatever else the request holds: each of these present is refused.
                # One count per array: Azure refuses a definition with more than 5 over the same array
                # (stacks/tools/preflight/policy_limits.py).
                _any(CONTAINERS, {"anyOf": [
                    {"not": {"anyOf": pinned}},
                    *({"field": f"{CONTAINERS}.{name}", **exists}
                      for name in ("command", "livenessProbe", "readinessProbe", "securityContext", "configMap")),
                ]}),
                # A secure value the dispatcher sends is inline; a reference would have ACI fetch one with an identity.
                _any(VARIABLES, {"anyOf": [
                    {"field": f"{VARIABLES}.name", "notIn": sorted({*LAUNCH_VARIABLES, *variables})},
                    {"field": f"{VARIABLES}.secureValueReference", **exists},
                ]}),
                _any(CREDENTIALS, {"field": f"{CREDENTIALS}.passwordReference", **exists}),
                _any(f"{GROUPS}/initContainers[*]"),
                _any(f"{GROUPS}/volumes[*]"),
                _any(f"{GROUPS}/extensions[*]"),
                _any(f"{GROUPS}/secretReferences[*]"),
                *({"field": f"{GROUPS}/{name}", **exists} for name in (
                    "dnsConfig", "diagnostics", "confidentialComputeProperties", "containerGroupProfile",
                    "standbyPoolProfile", "identityAcls")),
                # `priority: Spot` can be evicted mid-call. The dispatcher sends none, and `Regular` (the
                # default, which a request or the group ARM evaluates for a PATCH may carry) passes.
                {"allOf": [{"field": f"{GROUPS}/priority", **exists},
                           {"field": f"{GROUPS}/priority", "notEquals": "Regular"}]},
                {"field": f"{GROUPS}/ipAddress.type", "equals": "Public"},
                # What a whole group must hold, checked when the request names its containers: the
                # reserve's claim, a tags-only PATCH, names none and passes whether ARM evaluates
                # its body alone or the group it makes.
                {"allOf": [_any(CONTAINERS), {"anyOf": [
                    {"field": f"{GROUPS}/sku", "notEquals": "Standard"},
                    {"field": "identity.type", "notEquals": "UserAssigned"},
                    {"count": {"field": SUBNETS}, "notEquals": 1},
                    {"count": {"field": SUBNETS, "where": {"field": f"{SUBNETS}.id", "equals": subnet_id}},
                     "notEquals": 1},
                ]}]},
            ]},
        ]},
        "then": {"effect": "Deny"},
    }


@dataclass(frozen=True)
class LaunchPolicyArgs:
    subscription_id: str
    prefix: str
    resource_group_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    images: pulumi.Input[Sequence[str]]  # the releases' bot images by digest (stacks/shared/releases.py Rolled)
    variables: tuple[str, ...]  # the deployment's own bot variables (ACI_BOT_SETTINGS, ACI_BOT_SECRETS names)
    # aciCells outside the stack's resource group: (name, subscription, resource group scope, its own subnet
    # or None: the bots').
    cells: tuple[tuple[str, str, str, str | None], ...] = ()


class LaunchPolicy(pulumi.ComponentResource):
    assignment: azure_authorization.PolicyAssignment
    cells: list[azure_authorization.PolicyAssignment]  # each aciCells cell's (its own resource group's)

    def __init__(self, name: str, args: LaunchPolicyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:azure:LaunchPolicy", name, None, opts)
        self._args = args
        self.assignment = self._policy(name, args.subscription_id, args.resource_group_id, args.subnet_id,
                                       pulumi.ResourceOptions(parent=self))
        # A definition is made in one subscription and assignable there alone (its "definition location":
        # learn.microsoft.com/azure/governance/policy/concepts/definition-structure-basics), and the SDK's
        # PolicyDefinition takes its subscription from the provider: each cell's is made with a provider of
        # its subscription, its rule naming the cell's subnet.
        providers: dict[str, Provider] = {}
        self.cells = []
        for cell, subscription, scope, subnet in args.cells:
            opts_here = pulumi.ResourceOptions(parent=self)
            if subscription.lower() != args.subscription_id.lower():
                provider = providers.get(subscription.lower()) or providers.setdefault(
                    subscription.lower(), Provider(f"{name}-{subscription.lower()}", subscription_id=subscription,
                                                   opts=pulumi.ResourceOptions(parent=self)))
                opts_here = pulumi.ResourceOptions(parent=self, provider=provider)
            self.cells.append(self._policy(f"{name}-cell-{cell}", subscription, scope, subnet or args.subnet_id,
                                           opts_here, cell))
        self.register_outputs({"assignment": self.assignment.id})

    def _policy(self, name: str, subscription: str, scope: pulumi.Input[str], subnet_id: pulumi.Input[str],
                opts: pulumi.ResourceOptions, cell: str | None = None) -> azure_authorization.PolicyAssignment:
        """The Deny definition in `subscription` and its assignment on `scope` (a resource group)."""
        args = self._args
        rule = pulumi.Output.all(subnet_id, args.images).apply(
            lambda found: launch_rule(str(found[0]), list(found[1]), args.variables))
        title = f"{args.prefix}: bot container groups only" + (f" (cell {cell})" if cell else "")
        purpose = f"launch-cell-{cell}" if cell else "launch"
        definition = azure_authorization.PolicyDefinition(
            name,
            policy_definition_name=naming.guid(subscription, f"{args.prefix}/policy/{purpose}"),
            policy_type="Custom",
            mode="All",
            display_name=title,
            description="Refuses container groups that do not run one of this stack's releases' bot images, "
                        "run other code (a command, probe, init container, extension, profile, security context, "
                        "unknown variable), mount a volume or config map, read secrets by reference, set identity "
                        "ACLs, run as Spot, set DNS servers or a log workspace, have a public address or leave "
                        "the bots' subnet.",
            policy_rule=rule,
            opts=opts,
        )
        return azure_authorization.PolicyAssignment(
            name,
            policy_assignment_name=naming.guid(subscription, f"{args.prefix}/policy-assignment/{purpose}"),
            scope=scope,
            policy_definition_id=definition.id,
            display_name=title,
            enforcement_mode="Default",
            non_compliance_messages=[{"message": "voicefleet: a container group here must be one of the stack's "
                                                 "bots (its images by digest, the bots' subnet, no public address)"}],
            opts=opts,
        )
