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
