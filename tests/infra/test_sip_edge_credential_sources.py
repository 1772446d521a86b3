"""A trunk with an inbound digest credential and no sources in a cloud stack (docs/sip.md#inbound-digest): the
AWS, GCP and Azure edges open SIP (UDP 5060, and tlsPort) to any IPv4 address for it, each rule saying so, the plan
says it, and the policy pack takes exactly that: 0.0.0.0/0 on the SIP ports with the credential trunk's mark, and
not another wide network, nor the RTP ports, under that mark. A trunk with neither is still refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.config.settings import SettingsError
from stacks.config.sip_edge_sources import ANY_IPV4, CREDENTIAL_SOURCE_MARK
from stacks.tools.mocks import unwrap
from tests.infra.aws.test_sip_edge import EDGE as AWS_EDGE
from tests.infra.aws.test_sip_edge import NAME as AWS_NAME
from tests.infra.aws.test_sip_edge import _policy_found, _rules, run_with_edge
from tests.infra.azure.test_sip_edge import NAME as AZURE_NAME
from tests.infra.azure.test_sip_edge import NSG, run_azure_edge
from tests.infra.azure.test_sip_edge import _pack_found as azure_pack_found
from tests.infra.azure.test_sip_edge import _rules as azure_rules
from tests.infra.conftest import StackRunner
from tests.infra.gcp.test_sip_edge import _firewall, run_gcp_edge
from tests.infra.gcp.test_sip_edge import _pack_found as gcp_pack_found

OFFICE = {"name": "office", "mediaSources": ["203.0.113.0/24"], "numbers": {"300": "team-a"},
          "inboundDigestUsername": "office"}
PASSWORDS = {"voicefleet:sipEdgeInboundDigestPasswords": json.dumps({"office": "q" * 24})}


def _edge(trunks: list[dict[str, Any]]) -> dict[str, Any]:
    return {**AWS_EDGE, "trunks": trunks}


def test_aws_opens_sip_to_any_address_for_a_credential_trunk_marked_so_and_the_pack_takes_it(
        stack: StackRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    warned: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda message, *args, **kwargs: warned.append(str(message)))
    run = run_with_edge(stack, _edge([*AWS_EDGE["trunks"], OFFICE]), secrets=PASSWORDS)
    sip = [rule for rule in _rules(run, "securityGroupIngressRule", f"{AWS_NAME}-id") if rule[1] == 5060]
    assert sip == [("udp", 5060, 5060, ANY_IPV4), ("udp", 5060, 5060, "54.172.60.0/30"),
                   ("udp", 5060, 5060, "54.244.51.0/30")]
    (opened,) = [r for r in run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
                 if r.inputs.get("cidrIpv4") == ANY_IPV4 and r.inputs["securityGroupId"] == f"{AWS_NAME}-id"]
    assert CREDENTIAL_SOURCE_MARK in unwrap(opened.inputs)["description"]
    assert _policy_found(run) == []
    assert any("trunk office has an inbound digest credential and no sources" in line and ANY_IPV4 in line
               for line in warned), warned


def test_the_pack_takes_the_credential_trunks_mark_for_any_address_on_sip_alone(stack: StackRunner) -> None:
    run = run_with_edge(stack, _edge([*AWS_EDGE["trunks"], OFFICE]), secrets=PASSWORDS)
    rule = {"ipProtocol": "udp", "fromPort": 5060, "toPort": 5060, "securityGroupId": f"{AWS_NAME}-id",
            "description": f"sip edge: sip-wide ({CREDENTIAL_SOURCE_MARK})"}
    assert _policy_found(run, {**rule, "cidrIpv4": "0.0.0.0/1"}) == [
        "r opens SIP to 0.0.0.0/1 (toll-fraud scanners): the trunks' sources only on the SIP edge"]
    assert _policy_found(run, {**rule, "fromPort": 40000, "toPort": 40399, "cidrIpv4": ANY_IPV4}) == [
        "r opens RTP to 0.0.0.0/0 (anyone there takes over a call's audio): the trunks' media ranges only on the SIP "
        "edge"]


def test_gcp_and_azure_open_sip_to_any_address_for_it_and_the_pack_takes_their_rules(stack: StackRunner) -> None:
    gcp = _firewall(run_gcp_edge(stack, _edge([*AWS_EDGE["trunks"], OFFICE]), secrets=PASSWORDS))
    assert ANY_IPV4 in gcp["sip"]["sourceRanges"] and CREDENTIAL_SOURCE_MARK in gcp["sip"]["description"]
    assert ANY_IPV4 not in gcp["rtp"]["sourceRanges"]
    assert gcp_pack_found(*gcp.values()) == []
    azure = run_azure_edge(stack, _edge([*AWS_EDGE["trunks"], OFFICE]), secrets=PASSWORDS)
    sip = azure_rules(azure)["sip-in"]
    assert ANY_IPV4 in sip["sourceAddressPrefixes"] and CREDENTIAL_SOURCE_MARK in sip["description"]
    assert azure_pack_found(unwrap(azure.one(NSG, AZURE_NAME).inputs)) == []


def test_a_trunk_with_neither_sources_nor_a_credential_is_still_refused(stack: StackRunner) -> None:
    without = {key: value for key, value in OFFICE.items() if key != "inboundDigestUsername"}
    with pytest.raises(SettingsError, match="trunks.office.sources: list the networks.*A trunk with "
                                            "inboundDigestUsername may leave them out"):
        run_with_edge(stack, _edge([*AWS_EDGE["trunks"], without]))
