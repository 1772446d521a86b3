"""LaunchPolicy (Azure): what a container group in the stack's resource group may be, enforced by Azure.

The dispatcher's launch role (stacks/azure/identity.py) may write any container group there, so its
stolen token alone could run any image, on a public address, outside the bots' network rules. An
Azure Policy assignment on that resource group (effect `Deny`: ARM refuses the request, whoever
sends it) refuses every container group that
- runs an image other than this stack's registry's bot repositories pinned by digest
  (`<login server>/bot@sha256:*`; with TURN also `…/bot-webrtc@sha256:*`). Only the deployer may push
  there (the identities hold AcrPull), so this admits the images the stack built, any digest of
  them: an old revision launching the previous build during a rollout is not refused;
- overrides a container's command, mounts a volume (a `gitRepo` volume fetches code), names its own
  DNS servers or sends its logs to a Log Analytics workspace (the bots' stdout is the stack's);
- has a public IP address (`ipAddress.type` Public); or
- is not in exactly one subnet, the bots' (their egress rules and NAT address).
The dispatcher's own request (dispatcher/machines/aci/groups.py) passes: tests/infra/azure/
test_launch_policy.py evaluates this rule against the body it builds and against forged ones.
No built-in definition fits (the virtual-network one audits `networkProfile.id`, ACI's retired way).
SDK read: pulumi_azure_native/authorization/policy_definition.py (subscription scope, API 2025-01-01),
policy_assignment.py. Aliases: `az provider show -n Microsoft.ContainerInstance --expand
resourceTypes/aliases`; those used here are listed in `ALIASES`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_azure_native as azure

from stacks.azure import naming

GROUPS = "Microsoft.ContainerInstance/containerGroups"
CONTAINERS = f"{GROUPS}/containers[*]"
SUBNETS = f"{GROUPS}/subnetIds[*]"
# Every alias the rule names (tests/support/azure_policy.py maps each onto the request body).
ALIASES = (CONTAINERS, f"{CONTAINERS}.image", f"{CONTAINERS}.command", f"{GROUPS}/volumes[*]",
           f"{GROUPS}/ipAddress.type", SUBNETS, f"{SUBNETS}.id", f"{GROUPS}/dnsConfig", f"{GROUPS}/diagnostics")


def launch_rule(login_server: str, subnet_id: str, repositories: Sequence[str]) -> dict[str, Any]:
    """The policy rule: `Deny` a container group matching any of the refusals above."""
    pinned = [{"field": f"{CONTAINERS}.image", "like": f"{login_server}/{repository}@sha256:*"}
              for repository in repositories]
    return {
        "if": {"allOf": [
            {"field": "type", "equals": GROUPS},
            {"anyOf": [
                {"count": {"field": CONTAINERS, "where": {"not": {"anyOf": pinned}}}, "greater": 0},
                {"count": {"field": CONTAINERS, "where": {"field": f"{CONTAINERS}.command", "exists": "true"}},
                 "greater": 0},
                {"count": {"field": f"{GROUPS}/volumes[*]"}, "greater": 0},
                {"field": f"{GROUPS}/dnsConfig", "exists": "true"},
                {"field": f"{GROUPS}/diagnostics", "exists": "true"},
                {"field": f"{GROUPS}/ipAddress.type", "equals": "Public"},
                {"count": {"field": SUBNETS}, "notEquals": 1},
                {"count": {"field": SUBNETS, "where": {"field": f"{SUBNETS}.id", "equals": subnet_id}},
                 "notEquals": 1},
            ]},
        ]},
        "then": {"effect": "Deny"},
    }


@dataclass(frozen=True)
class LaunchPolicyArgs:
    subscription_id: str
    prefix: str
    resource_group_id: pulumi.Input[str]
    login_server: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    repositories: tuple[str, ...]  # the bot images' repositories in the registry


class LaunchPolicy(pulumi.ComponentResource):
    assignment: azure.authorization.PolicyAssignment

    def __init__(self, name: str, args: LaunchPolicyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:azure:LaunchPolicy", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        rule = pulumi.Output.all(args.login_server, args.subnet_id).apply(
            lambda found: launch_rule(str(found[0]), str(found[1]), args.repositories))
        title = f"{args.prefix}: bot container groups only"
        definition = azure.authorization.PolicyDefinition(
            name,
            policy_definition_name=naming.guid(args.subscription_id, f"{args.prefix}/policy/launch"),
            policy_type="Custom",
            mode="All",
            display_name=title,
            description="Refuses container groups that do not run this stack's bot images pinned by digest, "
                        "override a command, mount a volume, set DNS servers or a log workspace, have a public "
                        "address or leave the bots' subnet.",
            policy_rule=rule,
            opts=child,
        )
        self.assignment = azure.authorization.PolicyAssignment(
            name,
            policy_assignment_name=naming.guid(args.subscription_id, f"{args.prefix}/policy-assignment/launch"),
            scope=args.resource_group_id,
            policy_definition_id=definition.id,
            display_name=title,
            enforcement_mode="Default",
            non_compliance_messages=[{"message": "voicefleet: a container group here must be one of the stack's "
                                                 "bots (its images by digest, the bots' subnet, no public address)"}],
            opts=child,
        )
        self.register_outputs({"assignment": self.assignment.id})
