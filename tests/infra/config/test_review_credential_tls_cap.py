"""Hostile review of tlsPort beside a trunk of credentials alone (docs/sip.md#inbound-digest: such a trunk opens the
SIP port "and tlsPort" to any IPv4 address). The host's TLS table (stacks/shared/sip_edge_host.py tls_firewall) caps
new connections at 8 a source and 32 in all, on the premise its docstring states: "The stack's firewall admits the
trunks' sources alone". With the port open to anyone, four strangers' addresses holding 8 connections each fill the
32 that every trunk's TLS shares (Twilio's secure trunking included), and the table cannot tell a trunk's source
from a stranger's: it names no source at all. (nftables is not on every test machine, so this reads the table the
boot script loads rather than running it.)"""

from __future__ import annotations

import re

from stacks.tools.mocks import unwrap
from tests.infra.aws.test_sip_edge import EDGE, NAME, TWILIO_SIGNALLING, run_with_edge
from tests.infra.config.test_sip_edge_tls import _tls_edge, _tls_secrets
from tests.infra.conftest import StackRunner
from tests.infra.test_sip_edge_credential_sources import OFFICE, PASSWORDS


def _tls_table(stack: StackRunner, trunks: list[dict[str, object]]) -> str:
    run = run_with_edge(stack, _tls_edge(trunks=trunks), secrets={**_tls_secrets(), **PASSWORDS})
    assert any(r.inputs.get("cidrIpv4") == "0.0.0.0/0" and r.inputs["fromPort"] == 5061  # the premise: open to all
               for r in run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"))
    script = str(unwrap(run.one("aws:ec2/instance:Instance", NAME).inputs)["userData"])
    found = re.search(r"table inet sipedge_tls \{.*?\n\}", script, re.DOTALL)
    assert found is not None, "the boot script loads no TLS table"
    return found.group(0)


def test_with_tls_open_to_anyone_the_hosts_cap_keeps_the_trunks_sources_apart(stack: StackRunner) -> None:
    table = _tls_table(stack, [EDGE["trunks"][0], OFFICE])  # Twilio's, calling out over UDP
    assert all(network in table for network in TWILIO_SIGNALLING), table
