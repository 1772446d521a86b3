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
from stacks.tools.mocks import Run, unwrap
from tests.infra.conftest import StackRunner
from tests.infra.gcp.test_sip_edge import run_cloud_edge
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


def _gcp_dispatcher() -> tuple[PolicyResource, PolicyResource]:
    """The dispatcher's egress subnetwork (stacks/gcp/egress_network.py) and the Cloud Run service whose
    template's Direct VPC egress names it (stacks/gcp/dispatcher.py): what says which range is the dispatcher's."""
    subnetwork = _resource(rules.GCP_SUBNETWORK, {"name": "vf-prod-egress", "ipCidrRange": EGRESS_CIDR,
                                                   "region": "europe-west1"})
    service = _resource(rules.CLOUD_RUN_SERVICE, {"template": {"vpcAccess": {"networkInterfaces": [
        {"network": "projects/p/global/networks/vf-prod-egress", "subnetwork": "vf-prod-egress"}]}}},
        {"template": [subnetwork]})
    return subnetwork, service


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
    assert _pack(_resource(FIREWALL, GCP_CONTROL), *_gcp_dispatcher()) == []


def test_a_gcp_control_rule_from_another_subnetwork_of_the_network_is_refused() -> None:
    """The edge's own subnetwork (stacks/gcp/sip_edge.py EDGE_CIDR) is in the dispatcher's egress network, as
    private and narrower than the egress /24: not the dispatcher's, so not a source of the control API."""
    from_edge = {**GCP_CONTROL, "sourceRanges": ["10.200.1.0/28"]}
    assert _pack(_resource(FIREWALL, from_edge), *_gcp_dispatcher()) == [
        "r: the SIP edge's rule opens the control API (TCP 5080) to 10.200.1.0/28, outside the dispatcher's own "
        "subnet (the Cloud Run egress: 10.200.0.0/24): admit that subnet only"]
    # Without the service's egress in the stack, no range is the dispatcher's: the shipped rule is refused too.
    (alone,) = _pack(_resource(FIREWALL, GCP_CONTROL))
    assert "this stack declares none" in alone


@pytest.mark.parametrize("extra", [{"sourceTags": ["any-vm"]},
                                   {"sourceServiceAccounts": ["vf-prod-bot@project.iam.gserviceaccount.com"]}],
                         ids=["tags", "accounts"])
def test_a_gcp_control_rule_that_also_admits_tags_or_accounts_is_refused(extra: dict[str, Any]) -> None:
    assert _pack(_resource(FIREWALL, {**GCP_CONTROL, **extra})) != []


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


def test_an_aws_legacy_rule_opening_the_control_port_to_the_bots_is_refused() -> None:
    edge, dispatcher, bots = _aws_edge()
    legacy = _resource(LEGACY_RULE, {"type": "ingress", "protocol": "tcp", "fromPort": 5080, "toPort": 5080,
                                     "securityGroupId": "edge", "sourceSecurityGroupId": "bots"},
                       {"securityGroupId": [edge], "sourceSecurityGroupId": [bots]})
    assert _pack(edge, dispatcher, bots, legacy) != []


def test_inline_ingress_on_the_aws_edge_group_opening_the_control_port_is_refused() -> None:
    _, dispatcher, bots = _aws_edge()
    edge = _resource(SG, {"description": rules.SIP_EDGE_SG_DESCRIPTION, "ingress": [
        {"protocol": "tcp", "fromPort": 5080, "toPort": 5080, "cidrBlocks": ["0.0.0.0/0"]}]})
    assert _pack(edge, dispatcher, bots) != []


NSG = "azure-native:network:NetworkSecurityGroup"
DISPATCHER_SUBNET = "10.60.0.0/23"  # stacks/azure/network.py subnet_ranges: the Container Apps environment's


def _azure_network() -> PolicyResource:
    """The stack's virtual network as stacks/azure/network.py declares it: its subnets inline, the dispatcher's
    delegated to Container Apps' environments."""
    return _resource("azure-native:network:VirtualNetwork", {"subnets": [
        {"name": "dispatcher", "addressPrefix": DISPATCHER_SUBNET,
         "delegations": [{"name": "containerapps", "serviceName": "Microsoft.App/environments"}]},
        {"name": "bots", "addressPrefix": "10.60.4.0/22",
         "delegations": [{"name": "aci", "serviceName": "Microsoft.ContainerInstance/containerGroups"}]},
        {"name": "store", "addressPrefix": "10.60.8.0/24"}, {"name": "turn", "addressPrefix": "10.60.9.0/24"},
        {"name": "sip", "addressPrefix": "10.60.10.0/28"}]})


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
    assert _pack(_resource(NSG, _nsg(deny_in=True)), _azure_network()) == []
    (alone,) = _pack(_resource(NSG, _nsg(deny_in=True)))  # no network: no subnet is the dispatcher's
    assert "this stack declares none" in alone


def test_the_azure_edge_group_without_its_inbound_deny_is_refused() -> None:
    assert _pack(_resource(NSG, _nsg(deny_in=False)), _azure_network()) != []


def test_a_gcp_control_rule_from_a_wide_ipv6_private_range_is_refused() -> None:
    assert _pack(_resource(FIREWALL, {**GCP_CONTROL, "sourceRanges": ["fc00::/24"]})) != []


def test_each_refusal_names_its_way_forward() -> None:
    """What the pack says for each case above, so a refusal for an unrelated reason cannot pass for it."""
    debug = {**GCP_CONTROL, "sourceRanges": ["0.0.0.0/0"], "description": "ops: temporary debug access"}
    assert _pack(_resource(FIREWALL, debug)) == [
        "the SIP edge's rule opens tcp 5080-5080 from 0.0.0.0/0 (SIP, RTP and the control API only)"]
    (tags,) = _pack(_resource(FIREWALL, {**GCP_CONTROL, "sourceTags": ["any-vm"]}), *_gcp_dispatcher())
    assert "sourceTags ['any-vm']" in tags and "sourceRanges only" in tags
    (deny,) = _pack(_resource(NSG, _nsg(deny_in=False)), _azure_network())
    assert "inbound Deny" in deny and "AllowVnetInBound" in deny
    v6 = _pack(_resource(FIREWALL, {**GCP_CONTROL, "sourceRanges": ["fc00::/24"]}), *_gcp_dispatcher())
    assert len(v6) == 2 and "wider than /64" in v6[0] and "outside the dispatcher's own subnet" in v6[1]
    _, dispatcher, bots = _aws_edge()
    inline = _resource(SG, {"description": rules.SIP_EDGE_SG_DESCRIPTION, "ingress": [{"protocol": "tcp"}]})
    assert _pack(inline, dispatcher, bots) == [
        "the SIP edge's security group must not hold inline ingress: declare each rule as an "
        "aws.vpc.SecurityGroupIngressRule, which the pack checks"]


def test_another_rule_of_the_network_is_not_read_as_the_edges() -> None:
    """Selection by target: a rule aimed at another account is not the edge's (the dispatcher's, say)."""
    other = {**GCP_CONTROL, "sourceRanges": ["0.0.0.0/0"], "description": "ops: dispatcher health",
             "targetServiceAccounts": ["vf-prod-dispatcher@project.iam.gserviceaccount.com"]}
    assert _pack(_resource(FIREWALL, other)) == []


def test_an_ipv6_control_range_as_wide_as_one_subnet_passes() -> None:
    subnetwork, service = _gcp_dispatcher()
    dual = _resource(rules.GCP_SUBNETWORK, {**subnetwork.props, "internalIpv6Prefix": "fd00::/48"})
    service = _resource(service.resource_type, service.props, {"template": [dual]})
    assert _pack(_resource(FIREWALL, {**GCP_CONTROL, "sourceRanges": ["fd00:0:0:1::/64"]}), dual, service) == []
    assert _pack(_resource(FIREWALL, {**GCP_CONTROL, "sourceRanges": ["fd00::/63"]}), dual, service) != []


@pytest.mark.parametrize("deny", [{"sourceAddressPrefix": "VirtualNetwork"}, {"destinationPortRange": "5080"},
                                  {"protocol": "Tcp"}, {"direction": "Outbound"}, {"access": "Allow"}],
                         ids=["vnet-only", "one-port", "tcp-only", "outbound", "allow"])
def test_an_azure_deny_narrower_than_everything_inbound_does_not_count(deny: dict[str, Any]) -> None:
    group = _nsg(deny_in=True)
    *allows, last = group["securityRules"]
    found = _pack(_resource(NSG, {**group, "securityRules": [*allows, {**last, **deny}]}), _azure_network())
    assert any("inbound Deny" in message for message in found)


@pytest.mark.parametrize("description", [rules.SIP_EDGE_SG_DESCRIPTION, rules.TURN_SG_DESCRIPTION,
                                         rules.BOT_SG_DESCRIPTION])
def test_a_legacy_ingress_rule_is_refused_on_each_guarded_group(description: str) -> None:
    group = _resource(SG, {"description": description})
    ingress = {"protocol": "udp", "fromPort": 3478, "toPort": 3478, "securityGroupId": "g",
               "cidrBlocks": ["10.0.0.0/8"]}
    legacy = _resource(LEGACY_RULE, {"type": "ingress", **ingress}, {"securityGroupId": [group]})
    assert len(_pack(group, legacy)) == 1
    egress = _resource(LEGACY_RULE, {"type": "egress", **ingress}, {"securityGroupId": [group]})
    assert _pack(group, egress) == []


SECURITY_RULE = "azure-native:network:SecurityRule"  # a rule of its own on a group (pulumi_azure_native network)
TURN_SUBNET = "10.60.9.0/24"  # stacks/azure/network.py subnet_ranges("10.60.0.0/16")["turn"]: the relay's


def test_a_standalone_azure_rule_on_the_edge_group_opening_the_control_port_is_refused() -> None:
    group = _resource(NSG, {**_nsg(deny_in=True), "networkSecurityGroupName": "edge"})
    assert _pack(group, _azure_network()) == []  # the shipped group passes: a refusal below is the extra rule's
    opened = _resource(SECURITY_RULE, {
        "networkSecurityGroupName": "edge", "resourceGroupName": "rg", "securityRuleName": "debug", "priority": 90,
        "direction": "Inbound", "access": "Allow", "protocol": "Tcp", "sourceAddressPrefix": "*",
        "sourcePortRange": "*", "destinationAddressPrefix": "*", "destinationPortRange": "5080"},
        {"networkSecurityGroupName": [group]})
    assert _pack(group, opened, _azure_network()) == [
        "r: the SIP edge's rule opens tcp 5080-5080 from 0.0.0.0/0 (SIP, RTP and the control API only)"]
    # Named by the group's name alone (no dependency the pack can follow), it is the edge group's all the same.
    by_name = _resource(SECURITY_RULE, opened.props)
    assert len(_pack(group, by_name, _azure_network())) == 1
    # On another group of that name in another resource group: not the edge's.
    elsewhere = _resource(SECURITY_RULE, {**opened.props, "resourceGroupName": "other"})
    assert _pack(_resource(NSG, {**group.props, "resourceGroupName": "rg"}), elsewhere, _azure_network()) == []


def test_an_azure_control_rule_from_another_subnet_of_the_network_is_refused() -> None:
    group = _nsg(deny_in=True)
    *others, control, deny = group["securityRules"]
    assert control["sourceAddressPrefix"] == DISPATCHER_SUBNET
    from_turn = {**control, "sourceAddressPrefix": TURN_SUBNET}
    assert _pack(_resource(NSG, {**group, "securityRules": [*others, from_turn, deny]}), _azure_network()) == [
        "r: the SIP edge's rule opens the control API (TCP 5080) to 10.60.9.0/24, outside the dispatcher's own "
        "subnet (the Container Apps environment's: 10.60.0.0/23): admit that subnet only"]


def test_a_standalone_azure_control_rule_from_another_subnet_is_refused() -> None:
    group = _resource(NSG, {**_nsg(deny_in=True), "networkSecurityGroupName": "edge"})
    from_turn = _resource(SECURITY_RULE, {
        "networkSecurityGroupName": "edge", "priority": 90, "direction": "Inbound", "access": "Allow",
        "protocol": "Tcp", "sourceAddressPrefix": TURN_SUBNET, "destinationPortRange": "5080"},
        {"networkSecurityGroupName": [group]})
    (found,) = _pack(group, from_turn, _azure_network())
    assert "to 10.60.9.0/24, outside the dispatcher's own subnet" in found


def _program(run: Run) -> list[PolicyResource]:
    """The program's registrations as the pack is given them: inputs, and each input's dependencies resolved."""
    deps: dict[str, dict[str, list[PolicyResource]]] = {r.urn: {} for r in run.registrations}
    found = {r.urn: PolicyResource(r.type, unwrap(r.inputs), r.urn, r.name, options(), None, None, [], deps[r.urn])
             for r in run.registrations}
    for r in run.registrations:
        deps[r.urn].update({key: [found[urn] for urn in urns if urn in found]
                            for key, urns in r.property_dependencies.items()})
    return list(found.values())


@pytest.mark.parametrize("cloud", ["gcp", "azure"])
def test_the_programs_edge_passes_the_pack_and_its_control_rule_is_read_from_it(stack: StackRunner,
                                                                                 cloud: str) -> None:
    """The stacks as they declare the edge and the dispatcher's network pass every stack check, and moving the
    control rule's source to the edge's own subnet is refused: the checks found the dispatcher's subnet there."""
    program = _program(run_cloud_edge(stack, cloud))
    stack_checks = [policy for policy in rules.POLICIES if isinstance(policy, StackValidationPolicy)]

    def found(resources: list[PolicyResource]) -> list[str]:
        said: list[str] = []
        for policy in stack_checks:
            policy.validate(StackValidationArgs(resources), lambda message, urn=None: said.append(message))
        return said

    assert found(program) == []
    moved = []
    for resource in program:
        props = dict(resource.props)
        if resource.resource_type == FIREWALL and props.get("description") == "sip edge: control":
            props["sourceRanges"] = ["10.200.1.0/28"]  # stacks/gcp/sip_edge.py EDGE_CIDR
        if resource.resource_type == NSG and (props.get("tags") or {}).get("role") == rules.SIP_EDGE_ROLE:
            props["securityRules"] = [{**rule, "sourceAddressPrefix": "10.60.10.0/28", "sourceAddressPrefixes": None}
                                      if rule.get("name") == "control-in" else rule for rule in props["securityRules"]]
        moved.append(PolicyResource(resource.resource_type, props, resource.urn, resource.name, options(), None, None,
                                    [], resource.property_dependencies))
    (refused,) = found(moved)
    assert "10.200.1.0/28, outside" in refused or "10.60.10.0/28, outside" in refused
