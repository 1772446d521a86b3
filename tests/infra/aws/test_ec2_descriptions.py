"""The mocks refuse a security group rule's description EC2 refuses (stacks/tools/ec2_descriptions.py), so every
AWS stack test checks each description the stack writes, as `pulumi up` would."""

from __future__ import annotations

import pulumi_aws.vpc as aws_vpc
import pytest

from stacks.tools.ec2_descriptions import refused_descriptions
from stacks.tools.mocks import RecordingMocks, run_function

INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"


def _rule(description: str) -> None:
    aws_vpc.SecurityGroupIngressRule("rule", security_group_id="sg-1", ip_protocol="udp", from_port=5060,
                                     to_port=5060, cidr_ipv4="0.0.0.0/0", description=description)


def test_a_rule_described_with_an_apostrophe_is_refused_as_ec2_refuses_it() -> None:
    with pytest.raises(Exception, match="Invalid rule description"):
        run_function(lambda: _rule("sip edge: a trunk's allowAnySource"), RecordingMocks())


def test_a_rule_described_in_ec2s_set_is_taken() -> None:
    run = run_function(lambda: _rule("sip edge: sip-wide (trunk allowAnySource; [x]+=&{}!$*@#,)"), RecordingMocks())
    assert [r.name for r in run.of_type(INGRESS)] == ["rule"]


@pytest.mark.parametrize("inputs", [{"description": "x" * 256}, {"egress": [{"description": "bots' out"}]},
                                    {"ingress": [{"description": "tab\there"}]}])
def test_a_group_or_its_inline_rules_outside_the_set_are_refused(inputs: dict[str, object]) -> None:
    assert refused_descriptions("aws:ec2/securityGroup:SecurityGroup", inputs)


def test_other_resources_descriptions_are_not_ec2s_to_check() -> None:
    assert refused_descriptions("aws:iam/role:Role", {"description": "the dispatcher's role"}) == []
