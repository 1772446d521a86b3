"""Hostile review of a trunk with an inbound digest credential and no sources in a cloud stack
(docs/sip.md#inbound-digest promises SIP open to any IPv4 address "for it, and for nothing else"): what the edge
may then send out. The edges' egress comment says "a compromised edge reaches no other UDP service, the VPC's
included"; a credential trunk puts 0.0.0.0/0 among `edge.sources`, which every cloud's UDP egress rule takes whole.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from stacks.tools.mocks import unwrap
from tests.infra.aws.test_sip_edge import EDGE as AWS_EDGE
from tests.infra.aws.test_sip_edge import NAME as AWS_NAME
from tests.infra.aws.test_sip_edge import run_with_edge
from tests.infra.azure.test_sip_edge import NAME as AZURE_NAME
from tests.infra.azure.test_sip_edge import NSG, run_azure_edge
from tests.infra.conftest import StackRunner
from tests.infra.gcp.test_sip_edge import _firewall, run_gcp_edge
from tests.infra.test_sip_edge_credential_sources import OFFICE, PASSWORDS

# A UDP service inside the network (a TURN relay's port, a bot's RTP): private, in no trunk's ranges.
INSIDE, PORT = ipaddress.ip_address("10.60.1.7"), 3478


def _in(address: ipaddress.IPv4Address | ipaddress.IPv6Address, ranges: list[str]) -> bool:
    return any(r == "*" or (r[0].isdigit() and address in ipaddress.ip_network(r, strict=False)) for r in ranges)


def _aws(run: Any) -> bool:
    """Whether the edge's security group lets UDP out to INSIDE:PORT (a security group only allows)."""
    return any(r.inputs["securityGroupId"] == f"{AWS_NAME}-id" and r.inputs["ipProtocol"] in ("udp", "-1")
               and r.inputs["fromPort"] <= PORT <= r.inputs["toPort"] and _in(INSIDE, [r.inputs.get("cidrIpv4", "")])
               for r in run.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"))


def _gcp(run: Any) -> bool:
    """The first EGRESS rule (by priority) matching UDP to INSIDE:PORT decides."""
    def matches(entries: list[dict[str, Any]]) -> bool:
        return any(e["protocol"] in ("udp", "all") and (not e.get("ports") or any(
            int(p.split("-")[0]) <= PORT <= int(p.split("-")[-1]) for p in e["ports"])) for e in entries)
    for rule in sorted((r for r in _firewall(run).values() if r["direction"] == "EGRESS"), key=lambda r: r["priority"]):
        if _in(INSIDE, rule["destinationRanges"]):
            if matches(rule.get("allows") or []):
                return True
            if matches(rule.get("denies") or []):
                return False
    return True  # GCP's implied egress rule allows


def _azure(run: Any) -> bool:
    """The first Outbound security rule (by priority) matching UDP to INSIDE:PORT decides."""
    rules = unwrap(run.one(NSG, AZURE_NAME).inputs)["securityRules"]
    for rule in sorted((r for r in rules if r["direction"] == "Outbound"), key=lambda r: r["priority"]):
        prefixes = rule.get("destinationAddressPrefixes") or [rule.get("destinationAddressPrefix", "")]
        ports = rule.get("destinationPortRanges") or [rule.get("destinationPortRange", "")]
        if rule["protocol"] in ("Udp", "*") and _in(INSIDE, prefixes) and any(
                p == "*" or int(p.split("-")[0]) <= PORT <= int(p.split("-")[-1]) for p in ports):
            return bool(rule["access"] == "Allow")
    return True  # Azure's AllowVnetOutBound default rule


CLOUDS = {"aws": (run_with_edge, _aws), "gcp": (run_gcp_edge, _gcp), "azure": (run_azure_edge, _azure)}


@pytest.mark.parametrize("cloud", sorted(CLOUDS))
def test_without_a_credential_trunk_the_edge_sends_no_udp_into_the_network(stack: StackRunner, cloud: str) -> None:
    """The baseline the comment promises, which holds today: the edge's UDP goes to its trunks' ranges alone."""
    run, reaches = CLOUDS[cloud]
    assert not reaches(run(stack, {**AWS_EDGE, "trunks": list(AWS_EDGE["trunks"])}))


@pytest.mark.parametrize("cloud", sorted(CLOUDS))
def test_a_credential_trunk_lets_the_edge_send_no_udp_into_the_network(stack: StackRunner, cloud: str) -> None:
    """The caller's address is anyone's, so its SIP (and the call's RTP) may have to go anywhere on the internet; a
    compromised edge, or an SDP `c=` a caller writes, still must reach no UDP service inside the network."""
    run, reaches = CLOUDS[cloud]
    assert not reaches(run(stack, {**AWS_EDGE, "trunks": [*AWS_EDGE["trunks"], OFFICE]}, secrets=PASSWORDS))
