"""Hostile review of the SIP edge's security group rules on AWS with a trunk of credentials alone
(docs/sip.md#inbound-digest): EC2 takes a rule's description only from a-z, A-Z, 0-9, spaces and
._-:/()#,@[]+=&;{}!$* (the IpRange.Description constraint in EC2's API reference, which botocore's and every SDK's
model repeat; the error "Invalid rule description. Valid descriptions are strings less than 256 characters from the
following set", as aws-cloudformation/cfn-lint#173 quotes it for an apostrophe). The mocks take any string, so
only this check sees what `pulumi up` would be refused."""

from __future__ import annotations

import re

from stacks.tools.mocks import unwrap
from tests.infra.aws.test_sip_edge import EDGE, NAME, run_with_edge
from tests.infra.conftest import StackRunner
from tests.infra.test_sip_edge_credential_sources import OFFICE, PASSWORDS

EC2_RULE_DESCRIPTION = re.compile(r"[a-zA-Z0-9. _\-:/()#,@\[\]+=&;{}!$*]{0,255}")
RULES = ("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
         "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")


def _refused(stack: StackRunner, trunks: list[dict[str, object]], secrets: dict[str, str] | None = None) -> list[str]:
    run = run_with_edge(stack, {**EDGE, "trunks": trunks}, secrets=secrets)
    descriptions = [str(unwrap(r.inputs).get("description", "")) for kind in RULES for r in run.of_type(kind)
                    if r.name.startswith(NAME)]
    assert descriptions
    return [d for d in descriptions if not EC2_RULE_DESCRIPTION.fullmatch(d)]


def test_the_edges_rules_for_its_source_trunks_are_descriptions_ec2_takes(stack: StackRunner) -> None:
    assert _refused(stack, list(EDGE["trunks"])) == []


def test_a_credential_trunks_rules_are_descriptions_ec2_takes(stack: StackRunner) -> None:
    assert _refused(stack, [*EDGE["trunks"], OFFICE], PASSWORDS) == []
