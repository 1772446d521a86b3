"""Review of "every edge has its control API": ways a rule opens the edge's control port (TCP 5080) wider
than the dispatcher's own network while the whole policy pack passes it. Now that every AWS/GCP/Azure
edge listens on 5080, a bearer-secret door that places toll calls, the pack is what keeps it to the
dispatcher: each case here is a rule the pack should refuse and does not (xfail strict until it does),
beside a baseline the pack must keep passing, so an xfail cannot pass for a broken fixture."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import PolicyResource, ResourceValidationArgs, StackValidationArgs, StackValidationPolicy

from policy import rules
from tests.infra.policy.test_pack import options

FIREWALL = "gcp:compute/firewall:Firewall"
SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
LEGACY_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
EDGE_ACCOUNT = "vf-prod-sip@project.iam.gserviceaccount.com"  # stacks/gcp/naming.py account_id(stack, "sip")
EGRESS_CIDR = "10.200.0.0/24"  # stacks/gcp/egress_network.py: the dispatcher's Direct VPC egress
# The GCP edge's control rule as stacks/gcp/sip_edge.py declares it.
GCP_CONTROL = {"direction": "INGRESS", "priority": 1000, "sourceRanges": [EGRESS_CIDR],
               "targetServiceAccounts": [EDGE_ACCOUNT], "allows": [{"protocol": "tcp", "ports": ["5080"]}],
               "description": "sip edge: control"}


def _resource(typ: str, props: dict[str, Any], deps: dict[str, Any] | None = None) -> PolicyResource:
    return PolicyResource(typ, props, f"urn:x::{typ}::{id(props)}", "r", options(), None, None, [], deps or {})


def _pack(*resources: PolicyResource) -> list[str]:
    """Every violation the whole pack reports: each resource check on each resource, then each stack check."""
    found: list[str] = []

    def report(message: str, urn: str | None = None) -> None:
        found.append(message)

    for policy in rules.POLICIES:
        if policy.name == "required-tags":  # another concern: these fixtures carry no tags
            continue
        if isinstance(policy, StackValidationPolicy):
            policy.validate(StackValidationArgs(list(resources)), report)
            continue
        for r in resources:
            args = ResourceValidationArgs(r.resource_type, r.props, r.urn, r.name, options(), None)
            policy.validate(args, report)  # type: ignore[attr-defined]
    return found


def test_baseline_the_shipped_gcp_control_rule_passes_the_pack() -> None:
    assert _pack(_resource(FIREWALL, GCP_CONTROL)) == []


@pytest.mark.xfail(strict=True, reason=(
    "GCP admits a source in sourceRanges OR in sourceTags/sourceServiceAccounts (pulumi_gcp compute/firewall.py "
    "`source_tags` doc: 'sourceRanges OR the source IP that belongs to a tag'); policy/rules.py "
    "gcp_sip_edge_firewall reads sourceRanges only, so a control rule that also names a tag or account passes"))
@pytest.mark.parametrize("extra", [{"sourceTags": ["any-vm"]},
                                   {"sourceServiceAccounts": ["vf-prod-bot@project.iam.gserviceaccount.com"]}],
                         ids=["tags", "accounts"])
def test_a_gcp_control_rule_that_also_admits_tags_or_accounts_is_refused(extra: dict[str, Any]) -> None:
    assert _pack(_resource(FIREWALL, {**GCP_CONTROL, **extra})) != []


@pytest.mark.xfail(strict=True, reason=(
    "policy/rules.py gcp_sip_edge_firewall picks the edge's rules by their own description ('sip edge: '), so a "
    "rule aimed at the edge's service account under any other description opens 5080 to the internet unseen "
    "(the edge has an external address); select by target (the edge's account/role) instead"))
def test_a_gcp_rule_aimed_at_the_edge_under_another_description_is_refused() -> None:
    debug = {**GCP_CONTROL, "sourceRanges": ["0.0.0.0/0"], "description": "ops: temporary debug access"}
    assert _pack(_resource(FIREWALL, debug)) != []


def _aws_edge() -> tuple[PolicyResource, PolicyResource, PolicyResource]:
    edge = _resource(SG, {"description": rules.SIP_EDGE_SG_DESCRIPTION})
    dispatcher = _resource(SG, {"description": rules.DISPATCHER_SG_DESCRIPTION})
    bots = _resource(SG, {"description": rules.BOT_SG_DESCRIPTION})
    return edge, dispatcher, bots


def test_baseline_the_shipped_aws_control_rule_passes_and_one_from_the_bots_is_refused() -> None:
    edge, dispatcher, bots = _aws_edge()
    control = {"ipProtocol": "tcp", "fromPort": 5080, "toPort": 5080, "description": "sip edge: control"}
    shipped = _resource(INGRESS, {**control, "securityGroupId": "edge", "referencedSecurityGroupId": "disp"},
                        {"securityGroupId": [edge], "referencedSecurityGroupId": [dispatcher]})
    assert _pack(edge, dispatcher, bots, shipped) == []
    from_bots = _resource(INGRESS, {**control, "securityGroupId": "edge", "referencedSecurityGroupId": "bots"},
                          {"securityGroupId": [edge], "referencedSecurityGroupId": [bots]})
    assert len(_pack(edge, dispatcher, bots, from_bots)) == 1


@pytest.mark.xfail(strict=True, reason=(
    "policy/rules.py _ingress_into (sip_edge_sg_ports) reads aws:vpc SecurityGroupIngressRule only: the same "
    "opening written as an aws.ec2.SecurityGroupRule (type ingress, sourceSecurityGroupId = the bots') passes "
    "the pack, which the brief's tightened 'dispatcher tasks' group only' rule was meant to stop"))
def test_an_aws_legacy_rule_opening_the_control_port_to_the_bots_is_refused() -> None:
    edge, dispatcher, bots = _aws_edge()
    legacy = _resource(LEGACY_RULE, {"type": "ingress", "protocol": "tcp", "fromPort": 5080, "toPort": 5080,
                                     "securityGroupId": "edge", "sourceSecurityGroupId": "bots"},
                       {"securityGroupId": [edge], "sourceSecurityGroupId": [bots]})
    assert _pack(edge, dispatcher, bots, legacy) != []


@pytest.mark.xfail(strict=True, reason=(
    "the edge's security group's inline `ingress` is read by no check (bot_sg_inline_ingress looks at the bots' "
    "group alone): TCP 5080 from 0.0.0.0/0 inline on the edge's group passes the pack, and the Elastic IP's 1:1 "
    "NAT delivers it to the private address the control API binds"))
def test_inline_ingress_on_the_aws_edge_group_opening_the_control_port_is_refused() -> None:
    _, dispatcher, bots = _aws_edge()
    edge = _resource(SG, {"description": rules.SIP_EDGE_SG_DESCRIPTION, "ingress": [
        {"protocol": "tcp", "fromPort": 5080, "toPort": 5080, "cidrBlocks": ["0.0.0.0/0"]}]})
    assert _pack(edge, dispatcher, bots) != []


NSG = "azure-native:network:NetworkSecurityGroup"
DISPATCHER_SUBNET = "10.60.0.0/23"  # stacks/azure/network.py subnet_ranges: the Container Apps environment's


def _nsg(*, deny_in: bool) -> dict[str, Any]:
    """The Azure edge's group as stacks/azure/sip_edge.py security_rules makes it (its inbound half)."""
    def rule(name: str, priority: int, access: str, protocol: str, ports: str, source: str) -> dict[str, Any]:
        return {"name": name, "priority": priority, "direction": "Inbound", "access": access, "protocol": protocol,
                "sourcePortRange": "*", "destinationPortRange": ports, "sourceAddressPrefix": source,
                "destinationAddressPrefix": "*", "description": f"sip edge: {name}"}

    rules_in = [rule("sip-in", 100, "Allow", "Udp", "5060", "203.0.113.0/24"),
                rule("rtp-in", 110, "Allow", "Udp", "40000-40399", "203.0.113.0/24"),
                rule("control-in", 120, "Allow", "Tcp", "5080", DISPATCHER_SUBNET)]
    if deny_in:
        rules_in.append(rule("deny-other-in", 4096, "Deny", "*", "*", "*"))
    return {"tags": {"role": rules.SIP_EDGE_ROLE}, "securityRules": rules_in}


def test_baseline_the_shipped_azure_edge_group_passes_the_pack() -> None:
    assert _pack(_resource(NSG, _nsg(deny_in=True))) == []


@pytest.mark.xfail(strict=True, reason=(
    "Azure puts AllowVnetInBound (priority 65000: every port from the VirtualNetwork tag, peered networks too) "
    "under every group's own rules (learn.microsoft.com REST default-security-rules/get); policy/rules.py "
    "azure_sip_edge_rules reads the Allow rules only, so the edge's group without its deny-other-in passes and "
    "the control API (and SIP, RTP) open to the whole network: the TURN relay's VM, the store's endpoints"))
def test_the_azure_edge_group_without_its_inbound_deny_is_refused() -> None:
    assert _pack(_resource(NSG, _nsg(deny_in=False))) != []


@pytest.mark.xfail(strict=True, reason=(
    "policy/rules.py _control_range compares any family's prefix with /23: an IPv6 private /24 (fc00::/24, 2**104 "
    "addresses, every dual-stack subnet of the network) passes as 'no wider than the dispatcher's subnet'; an IPv6 "
    "subnet is a /64, so IPv6 wants its own bound"))
def test_a_gcp_control_rule_from_a_wide_ipv6_private_range_is_refused() -> None:
    assert _pack(_resource(FIREWALL, {**GCP_CONTROL, "sourceRanges": ["fc00::/24"]})) != []
