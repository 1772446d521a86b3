"""BotRuntime: what one voice session runs on ECS — a task definition the dispatcher RunTasks.

There is no ECS service for bots. The family name is stable (`<prefix>-bot`); the dispatcher
starts each session's release, a revision of it by ARN (`RELEASES`, stacks/shared/releases.py), and
`skip_destroy` keeps replaced revisions ACTIVE, so the releases kept beside the newest still
start (a deregistered, INACTIVE revision starts no new task).
`grant_run` is the only way to let another role start bots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws.cloudwatch as aws_cloudwatch
import pulumi_aws.iam as aws_iam

from botchannel.contract import CHANNEL_URL_VARIABLE
from stacks.aws.container import fargate_container, fargate_task_definition
from stacks.aws.iam import assume_role_policy, ecs_task_trust_policy, policy_document, statement
from stacks.aws.secrets import SecretStore
from stacks.shared.contract import BOT_CONTAINER_NAME

ECS_TASKS = "ecs-tasks.amazonaws.com"


@dataclass(frozen=True)
class BotRuntimeArgs:
    family: str
    image: pulumi.Input[str]  # digest-pinned
    repository_arn: pulumi.Input[str]
    region: str
    cpu: int
    memory: int
    cpu_architecture: str  # X86_64 or ARM64: one the images are built for (settings.platforms)
    max_session_seconds: int
    log_retention_days: int
    secrets: SecretStore
    secret_names: Sequence[str]  # env names of the bot's secrets (provider API keys, BOT_CHANNEL_TOKEN)
    protect: bool
    channel_url: pulumi.Input[str] | None = None  # BOT_CHANNEL_URL: the dispatcher's wss:// channel
    role: str = "bot"  # names its secret grant: one per bot runtime (the WebRTC bot is a second one)
    # Its settings (stacks/config/observability.py: LOG_FORMAT, the trace collector's endpoint).
    environment: Mapping[str, str] = field(default_factory=dict)
    # The IAM statements the team grants the bot (voicefleet:botPermissions): its task role's only policy.
    permissions: Sequence[Mapping[str, Any]] = ()


# What a bot's execution role does before the bot runs (an ECS cell's own is told the same:
# stacks/aws/cell_task_definitions.py); reading its secrets is the secret store's grant.
REGISTRY_LOGIN = ["ecr:GetAuthorizationToken"]  # has no resource-level form
PULL_IMAGE = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
WRITE_LOGS = ["logs:CreateLogStream", "logs:PutLogEvents"]


def execution_policy(repository_arn: pulumi.Input[str], log_group_arn: pulumi.Input[str]) -> pulumi.Output[str]:
    """Pull one repository's images and write one log group: instead of the broad managed policy."""
    return policy_document(
        statement(REGISTRY_LOGIN, "*", sid="RegistryLogin"),
        statement(PULL_IMAGE, repository_arn, sid="PullImage"),
        statement(WRITE_LOGS, pulumi.Output.concat(log_group_arn, ":*"), sid="WriteLogs"),
    )


class BotRuntime(pulumi.ComponentResource):
    family: str
    task_definition_arn: pulumi.Output[str]
    task_role: aws_iam.Role
    execution_role: aws_iam.Role
    log_group_name: pulumi.Output[str]

    def __init__(self, name: str, args: BotRuntimeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:aws:BotRuntime", name, None, opts)
        self._name = name
        child = pulumi.ResourceOptions(parent=self)
        logs = aws_cloudwatch.LogGroup(name, name=f"/ecs/{args.family}",
                                       retention_in_days=args.log_retention_days,
                                       opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
        self.execution_role = aws_iam.Role(f"{name}-execution", assume_role_policy=assume_role_policy(ECS_TASKS),
                                           description="ECS agent for voicefleet bots: pull image, write logs",
                                           opts=child)
        aws_iam.RolePolicy(f"{name}-execution", role=self.execution_role.id,
                           policy=execution_policy(args.repository_arn, logs.arn), opts=child)
        args.secrets.grant_read(args.role, self.execution_role, args.secret_names)
        # voicefleet's bot calls no AWS API but sts:GetCallerIdentity, which no policy can allow or deny:
        # its sessions (one per task, named by the task id) are what a bot proves its task with
        # (dispatcher/machines/ecs/identity.py). So the task role holds exactly what the team's bot was
        # granted (botPermissions), which its SDK reaches through the task's credentials endpoint.
        self.task_role = aws_iam.Role(f"{name}-task", assume_role_policy=ecs_task_trust_policy(args.region, logs.arn),
                                      description="voicefleet bot task (voicefleet:botPermissions)" if args.permissions
                                      else "voicefleet bot task (no AWS permissions)", opts=child)
        if args.permissions:
            aws_iam.RolePolicy(f"{name}-task-permissions", role=self.task_role.id,
                               policy=policy_document(*args.permissions), opts=child)

        container = fargate_container(
            name=BOT_CONTAINER_NAME,
            image=args.image,
            environment=[{"name": "MAX_SESSION_SECONDS", "value": str(args.max_session_seconds)},
                         *([{"name": CHANNEL_URL_VARIABLE, "value": args.channel_url}] if args.channel_url else []),
                         *({"name": key, "value": value} for key, value in sorted(args.environment.items()))],
            secrets=args.secrets.references(args.secret_names),
            log_group=logs.name,
            region=args.region,
        )
        task_definition = fargate_task_definition(
            name,
            family=args.family,
            cpu=args.cpu,
            memory=args.memory,
            cpu_architecture=args.cpu_architecture,
            execution_role_arn=self.execution_role.arn,
            task_role_arn=self.task_role.arn,
            container=container,
            skip_destroy=True,
            opts=child,
        )
        self.family = args.family
        self._family_arn = task_definition.arn_without_revision
        self.task_definition_arn = task_definition.arn
        self.log_group_name = logs.name
        self.register_outputs({"family": self.family, "task_definition_arn": self.task_definition_arn,
                               "log_group_name": self.log_group_name})

    def grant_run(self, grantee: str, role: aws_iam.Role, cluster_arn: pulumi.Output[str], *,
                  claim: bool) -> aws_iam.RolePolicy:
        """Let `role` start bot tasks of this family on this cluster only, and watch/stop them; with
        `claim` (the stack has the bot channel, so the dispatcher may hold a warm reserve), also
        re-tag a running task: a claim tags the idle task with its session and drops the idle tag
        (dispatcher/machines/ecs/reserve.py), only voicefleet's own tag keys."""
        tasks = cluster_arn.apply(lambda arn: arn.replace(":cluster/", ":task/", 1) + "/*")
        on_cluster = {"ArnEquals": {"ecs:cluster": cluster_arn}}
        reserve = [statement(["ecs:TagResource", "ecs:UntagResource"], tasks,
                             {"ForAllValues:StringLike": {"aws:TagKeys": ["voicefleet:*"]}}, sid="ClaimReserveBot")]
        return aws_iam.RolePolicy(
            f"{self._name}-run-{grantee}",
            role=role.id,
            policy=policy_document(
                statement(["ecs:RunTask"], pulumi.Output.concat(self._family_arn, ":*"), on_cluster, sid="RunBot"),
                # RunTask with `tags` (session id) also needs TagResource, only as part of the launch.
                statement(["ecs:TagResource"], tasks, {"StringEquals": {"ecs:CreateAction": "RunTask"}},
                          sid="TagOnLaunch"),
                statement(["iam:PassRole"], [self.task_role.arn, self.execution_role.arn],
                          {"StringEquals": {"iam:PassedToService": ECS_TASKS}}, sid="PassBotRoles"),
                statement(["ecs:DescribeTasks", "ecs:StopTask"], tasks, on_cluster, sid="ManageBots"),
                # ListTasks has no task-level resource; the condition pins it to the cluster.
                statement(["ecs:ListTasks"], "*", on_cluster, sid="ListBots"),
                *(reserve if claim else []),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
