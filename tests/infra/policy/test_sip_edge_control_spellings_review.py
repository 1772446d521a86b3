"""Review of the checks that keep the SIP edge's control API (TCP 5080) to the dispatcher's own subnet on GCP and
Azure (`sip-edge-control-from-the-dispatcher`, `sip-edge-azure-standalone-rules`): rules the providers take as
they are, spelled otherwise than the pack compares them, which open the control port to another subnet of the
network (the TURN relay's, which faces the internet) or open the whole edge, while the whole pack passes them.

- A one-port range `5080-5080`: GCP firewall `ports` take "an integer or a range" and Azure's
  `destinationPortRange` "an integer or range between 0 and 65535"; `_azure_edge_rule` and
  `gcp_sip_edge_firewall` read it as the control port (private source: width checked only), while
  `sip_edge_control_sources` (`_azure_control`, and the GCP loop's `"5080" in ports`) compare the string "5080".
- Azure's enums in another case (`allow`, `inbound`): ARM's network provider takes them whatever the case (the
  pulumi_azure_native enums are plain strings: network/_enums.py SecurityRuleAccess "Allow"; checkov PR #655 and
  prowler PR #3808 met rules written `allow`/`TCP` that Azure applied), and `_azure_edge_rule` skips any rule
  whose `access`/`direction` is not spelled exactly "Allow"/"Inbound" (`protocol` alone is lower-cased).

Each case is refused now, beside a baseline the pack refused already, so a case cannot pass for a broken
fixture; and the edge's network interface is read for the group it uses, tagged or not."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import PolicyResource

from policy import rules
from tests.infra.policy.test_sip_edge_control import (
    FIREWALL,
    GCP_CONTROL,
    NSG,
    TURN_SUBNET,
    _azure_network,
    _gcp_dispatcher,
    _nsg,
    _pack,
    _resource,
)

EDGE_SUBNETWORK = "10.200.1.0/28"  # stacks/gcp/sip_edge.py EDGE_CIDR: in the egress network, not the dispatcher's


def _gcp_control(ports: str) -> list[str]:
    rule = {**GCP_CONTROL, "sourceRanges": [EDGE_SUBNETWORK], "allows": [{"protocol": "tcp", "ports": [ports]}]}
    return _pack(_resource(FIREWALL, rule), *_gcp_dispatcher())


def _azure_control(**changes: Any) -> list[str]:
    group = _nsg(deny_in=True)
    *others, control, deny = group["securityRules"]
    changed = {**control, "sourceAddressPrefix": TURN_SUBNET, **changes}
    return _pack(_resource(NSG, {**group, "securityRules": [*others, changed, deny]}), _azure_network())


def test_baseline_a_control_rule_from_another_subnet_is_refused_on_both_clouds() -> None:
    assert len(_gcp_control("5080")) == 1 and "outside the dispatcher's own subnet" in _gcp_control("5080")[0]
    (azure,) = _azure_control()
    assert "to 10.60.9.0/24, outside the dispatcher's own subnet" in azure


def test_a_gcp_control_rule_naming_its_port_as_a_one_port_range_is_refused_from_another_subnet() -> None:
    assert _gcp_control("5080-5080") != []


def test_an_azure_control_rule_naming_its_port_as_a_one_port_range_is_refused_from_another_subnet() -> None:
    assert _azure_control(destinationPortRange="5080-5080") != []


OPEN = {"protocol": "*", "destinationPortRange": "*", "sourceAddressPrefix": "*"}  # every port, from anyone


def test_baseline_an_azure_rule_opening_everything_is_refused_as_azure_spells_it() -> None:
    assert any("opens * *" in message for message in _azure_control(**OPEN))


def test_an_azure_rule_opening_everything_in_lower_case_is_refused() -> None:
    assert _azure_control(**OPEN, access="allow", direction="inbound") != []


OUTSIDE = "outside the dispatcher's own subnet"


@pytest.mark.parametrize("allow", [{"protocol": "tcp", "ports": ["22", "5080"]},
                                   {"protocol": "tcp", "ports": ["5000-5100"]}, {"protocol": "tcp"},
                                   {"protocol": "all"}, {"protocol": "TCP", "ports": ["5080"]}],
                         ids=["list", "range-holding-it", "every-port", "every-protocol", "upper-case"])
def test_every_gcp_spelling_that_opens_the_control_port_has_its_sources_checked(allow: dict[str, Any]) -> None:
    rule = {**GCP_CONTROL, "sourceRanges": [EDGE_SUBNETWORK], "allows": [allow]}
    assert any(OUTSIDE in message for message in _pack(_resource(FIREWALL, rule), *_gcp_dispatcher()))


@pytest.mark.parametrize("changes", [
    {"destinationPortRange": None, "destinationPortRanges": ["5060", "5080"]},
    {"destinationPortRange": "5000-5100"}, {"destinationPortRange": "*"}, {"protocol": "*"},
    {"access": "ALLOW", "direction": "inbound", "protocol": "tcp"}],
    ids=["list", "range-holding-it", "every-port", "every-protocol", "other-case"])
def test_every_azure_spelling_that_opens_the_control_port_has_its_sources_checked(changes: dict[str, Any]) -> None:
    assert any(OUTSIDE in message for message in _azure_control(**changes))


def test_the_shipped_azure_group_with_its_enums_in_lower_case_passes_and_its_deny_counts() -> None:
    """Case is not meaning: the shipped group spelled in lower case is the same group (its deny included)."""
    group = _nsg(deny_in=True)
    lowered = [{**rule, "access": rule["access"].lower(), "direction": "inbound"} for rule in group["securityRules"]]
    assert _pack(_resource(NSG, {**group, "securityRules": lowered}), _azure_network()) == []
    deny = {**lowered[-1], "destinationPortRange": None, "destinationPortRanges": ["0-65535"]}
    assert _pack(_resource(NSG, {**group, "securityRules": [*lowered[:-1], deny]}), _azure_network()) == []


def test_the_azure_turn_relays_group_is_read_whatever_the_case() -> None:
    opened = {"direction": "inbound", "access": "allow", "protocol": "tcp", "destinationPortRange": "22"}
    assert list(rules.azure_turn_ports(NSG, {"tags": {"role": rules.TURN_ROLE}, "securityRules": [opened]})) != []


NIC = "azure-native:network:NetworkInterface"


def test_the_azure_edges_nic_on_a_group_the_pack_does_not_read_is_refused() -> None:
    """stacks/azure/sip_edge.py tags the NIC role=sip-edge too (`_common`) and attaches the group by its id: a
    group shared with another role, or made without the tag, opens the edge to anyone, and no check looks."""
    untagged = _resource(NSG, {**_nsg(deny_in=True), "tags": {"role": "shared"}})
    untagged.props["securityRules"][2] = {**untagged.props["securityRules"][2], **OPEN}
    nic = _resource(NIC, {"tags": {"role": "sip-edge"}, "networkSecurityGroup": {"id": "group-id"}},
                    {"networkSecurityGroup": [untagged]})
    tagged = _resource(NSG, {**untagged.props, "tags": {"role": "sip-edge"}})
    assert _pack(tagged, nic, _azure_network()) != []  # the same rules on the tagged group are refused (baseline)
    assert _pack(untagged, nic, _azure_network()) != []


def _edge_nic(*groups: PolicyResource, **props: Any) -> PolicyResource:
    return _resource(NIC, {"tags": {"role": "sip-edge"}, "networkSecurityGroup": {"id": "group-id"}, **props},
                     {"networkSecurityGroup": list(groups)})


def test_the_shipped_edge_nic_on_its_tagged_group_passes_once_read() -> None:
    group = _resource(NSG, _nsg(deny_in=True))
    assert _pack(group, _edge_nic(group), _azure_network()) == []


def test_an_edge_nic_on_no_group_of_the_stack_is_refused() -> None:
    """A group id from elsewhere (or none): Azure applies a group the pack never sees."""
    (refused,) = _pack(_edge_nic(), _azure_network())
    assert "on no network security group this stack makes" in refused


def test_the_control_sources_of_an_untagged_group_the_edge_nic_uses_are_checked() -> None:
    group = _nsg(deny_in=True)
    *others, control, deny = group["securityRules"]
    untagged = _resource(NSG, {"tags": {"role": "shared"},
                               "securityRules": [*others, {**control, "sourceAddressPrefix": TURN_SUBNET}, deny]})
    assert any("outside the dispatcher's own subnet" in found
               for found in _pack(untagged, _edge_nic(untagged), _azure_network()))
