"""The one shape of an ECS container and Fargate task definition in this project (bot and dispatcher alike)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_aws.ecs as aws_ecs


def fargate_container(
    *,
    name: str,
    image: pulumi.Input[str],
    environment: Sequence[dict[str, Any]],
    secrets: Any,
    log_group: pulumi.Input[str],
    region: str,
    port: int | None = None,
    stop_timeout: int = 30,
    labels: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every field ECS would otherwise fill in is written out, so a refresh shows no phantom diff.
    No `initProcessEnabled`: the images' own tini is PID 1 and forwards SIGTERM; ECS's init would
    be a second one in front of it (review item 10)."""
    return {
        "name": name,
        "image": image,
        "essential": True,
        "cpu": 0,
        "environment": list(environment),
        "secrets": secrets,
        "portMappings": [] if port is None else [{"containerPort": port, "hostPort": port, "protocol": "tcp"}],
        "mountPoints": [],
        "volumesFrom": [],
        "systemControls": [],
        "stopTimeout": stop_timeout,
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {"awslogs-group": log_group, "awslogs-region": region, "awslogs-stream-prefix": name},
        },
        **({"dockerLabels": dict(labels)} if labels else {}),
    }


def fargate_task_definition(
    name: str,
    *,
    family: str,
    cpu: int,
    memory: int,
    cpu_architecture: str,
    execution_role_arn: pulumi.Input[str],
    task_role_arn: pulumi.Input[str],
    container: dict[str, Any],
    opts: pulumi.ResourceOptions,
    skip_destroy: bool | None = None,
) -> aws_ecs.TaskDefinition:
    """One container on Fargate, Linux, in the VPC (`awsvpc`): the only task shape either runs."""
    return aws_ecs.TaskDefinition(
        name,
        family=family,
        cpu=str(cpu),
        memory=str(memory),
        network_mode="awsvpc",
        requires_compatibilities=["FARGATE"],
        runtime_platform={"cpu_architecture": cpu_architecture, "operating_system_family": "LINUX"},
        execution_role_arn=execution_role_arn,
        task_role_arn=task_role_arn,
        container_definitions=pulumi.Output.json_dumps([container]),
        skip_destroy=skip_destroy,
        opts=opts,
    )
