"""EC2's rule on a security group's and a security group rule's description: under 256 characters from a-z, A-Z,
0-9, spaces and ._-:/()#,@[]+=&;{}!$* (IpRange.Description and CreateSecurityGroup's GroupDescription in EC2's
API reference, repeated in botocore's ec2 service model). EC2 refuses any other with "Invalid rule description.
Valid descriptions are strings less than 256 characters from the following set" (as aws-cloudformation/cfn-lint
issue 173 quotes it), so `pulumi up` fails where a preview passed; the mocks (stacks/tools/mocks.py) refuse it so."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

EC2_DESCRIPTION = re.compile(r"[a-zA-Z0-9. _\-:/()#,@\[\]+=&;{}!$*]{0,255}")
# The resources whose description (and, for a group, whose inline rules' descriptions) EC2 checks so.
DESCRIBED = ("aws:ec2/securityGroup:SecurityGroup", "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
             "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", "aws:ec2/securityGroupRule:SecurityGroupRule")


def refused_descriptions(typ: str, inputs: Mapping[str, Any]) -> list[str]:
    """Each description of this resource's that EC2 would refuse (none for a resource it does not check so)."""
    if typ not in DESCRIBED:
        return []
    rules = [*(inputs.get("ingress") or []), *(inputs.get("egress") or [])]
    said = [inputs.get("description"), *(r.get("description") for r in rules if isinstance(r, Mapping))]
    return [d for d in said if isinstance(d, str) and not EC2_DESCRIPTION.fullmatch(d)]


def check_descriptions(typ: str, name: str, inputs: Mapping[str, Any]) -> None:
    """Raises EC2's refusal for a description outside its set, naming the resource and the way forward."""
    refused = refused_descriptions(typ, inputs)
    if refused:
        raise ValueError(f"{name}: Invalid rule description {refused[0]!r}. Valid descriptions are strings less "
                         "than 256 characters from a-zA-Z0-9, spaces and ._-:/()#,@[]+=&;{}!$* (reword it: no "
                         "apostrophe or other character outside that set)")
