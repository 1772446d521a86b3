"""IAM policy documents built as Outputs with a stable key order (readable diffs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

Statement = Mapping[str, Any]


def statement(actions: Sequence[str], resources: pulumi.Input[Sequence[pulumi.Input[str]]] | pulumi.Input[str],
              condition: Mapping[str, Any] | None = None, sid: str | None = None) -> dict[str, Any]:
    """One Allow statement. Actions are always explicit: a wildcard action fails tests and policy."""
    result: dict[str, Any] = {}
    if sid:
        result["Sid"] = sid
    result |= {"Effect": "Allow", "Action": list(actions), "Resource": resources}
    if condition:
        result["Condition"] = condition
    return result


def policy_document(*statements: Statement) -> pulumi.Output[str]:
    return pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": list(statements)})


def assume_role_policy(service: str) -> str:
    import json

    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    })


def ecs_task_trust_policy(region: str, same_account_arn: pulumi.Input[str]) -> pulumi.Output[str]:
    """ECS may assume the role only for a task of this account and region: AWS's "Amazon ECS task IAM
    role" page recommends `aws:SourceAccount` and `aws:SourceArn` (`arn:aws:ecs:<region>:<account>:*`)
    in a task role's trust policy against the cross-service confused deputy. `same_account_arn` is
    any ARN of the stack's own (its partition and account are read from it)."""
    parts = pulumi.Output.from_input(same_account_arn).apply(lambda arn: arn.split(":"))
    account = parts.apply(lambda p: p[4])
    source = pulumi.Output.concat("arn:", parts.apply(lambda p: p[1]), ":ecs:", region, ":", account, ":*")
    return pulumi.Output.json_dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                       "Action": "sts:AssumeRole",
                       "Condition": {"StringEquals": {"aws:SourceAccount": account},
                                     "ArnLike": {"aws:SourceArn": source}}}],
    })
