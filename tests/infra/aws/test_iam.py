"""AWS IAM, as behaviour rather than a snapshot: every grant is an Allow, scoped to the one
resource it serves; only actions with no resource-level form get `*`; every role can be assumed
by the ECS task service alone, never by an AWS account or `*`."""

from __future__ import annotations

import json
from typing import Any

from stacks.aws.iam import assume_role_policy, statement
from stacks.tools.mocks import Run, unwrap
from tests.infra.helpers import actions, policy_statements

ACCOUNT_REGION = "eu-west-1:123456789012"
# Actions IAM cannot scope to a resource (the AWS service authorization reference).
UNSCOPABLE = {"ecr:GetAuthorizationToken", "ecs:ListTasks"}


def by_sid(run: Run, sid: str) -> list[dict[str, Any]]:
    return [s for s in policy_statements(run) if s.get("Sid") == sid]


def test_every_statement_allows_and_only_unscopable_actions_get_every_resource(aws: Run) -> None:
    statements = policy_statements(aws)
    assert statements and all(s["Effect"] == "Allow" for s in statements)
    for s in statements:
        if "Principal" in s:
            continue  # a trust statement names no resource
        resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        if "*" in resources:
            assert set(actions(s)) <= UNSCOPABLE, s


def test_each_execution_role_pulls_its_own_repository_and_writes_its_own_log_group(aws: Run) -> None:
    pulls = sorted(s["Resource"] for s in by_sid(aws, "PullImage"))
    assert pulls == [f"arn:aws:ecr:{ACCOUNT_REGION}:repository/voicefleet-aws-test-{name}"
                     for name in ("bot", "dispatcher")]
    logs = sorted(s["Resource"] for s in by_sid(aws, "WriteLogs"))
    assert logs == [f"arn:aws:logs:{ACCOUNT_REGION}:log-group:/ecs/voicefleet-aws-test-{name}:*"
                    for name in ("bot", "dispatcher")]
    assert all(actions(s) == ["ecr:GetAuthorizationToken"] for s in by_sid(aws, "RegistryLogin"))


def test_every_role_trusts_the_ecs_task_service_only(aws: Run) -> None:
    roles = aws.of_type("aws:iam/role:Role")
    assert len(roles) == 4
    for role in roles:
        (trust,) = json.loads(unwrap(role.inputs["assumeRolePolicy"]))["Statement"]
        trust.pop("Condition", None)  # the bot task role's own, below
        assert trust == {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                         "Action": "sts:AssumeRole"}, role.name


def test_the_bot_task_role_is_assumed_only_for_tasks_of_this_account_and_region(aws: Run) -> None:
    # Its sessions prove a bot's task to the dispatcher (dispatcher/machines/ecs/identity.py): AWS's
    # confused-deputy keys keep ECS from assuming it for any other account's task.
    (role,) = [r for r in aws.of_type("aws:iam/role:Role") if r.name.endswith("-bot-task")]
    (trust,) = json.loads(unwrap(role.inputs["assumeRolePolicy"]))["Statement"]
    account, region = ACCOUNT_REGION.split(":")[1], ACCOUNT_REGION.split(":")[0]
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": account},
                                  "ArnLike": {"aws:SourceArn": f"arn:aws:ecs:{region}:{account}:*"}}


def test_the_statement_builders_write_exactly_what_they_are_given() -> None:
    assert statement(["a:B"], "arn:x", sid="S") == {
        "Sid": "S", "Effect": "Allow", "Action": ["a:B"], "Resource": "arn:x"}
    condition = {"StringEquals": {"k": "v"}}
    assert statement(["a:B"], ["arn:x"], condition)["Condition"] == condition
    assert "Sid" not in statement(["a:B"], "arn:x")
    (trust,) = json.loads(assume_role_policy("ecs-tasks.amazonaws.com"))["Statement"]
    assert trust == {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                     "Action": "sts:AssumeRole"}
