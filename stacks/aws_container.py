"""The one shape of an ECS container definition in this project (bot and dispatcher alike)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi


def fargate_container(
    *,
    name: str,
    image: pulumi.Input[str],
    environment: Sequence[dict[str, Any]],
    secrets: Any,
    log_group: pulumi.Input[str],
    region: str,
    port: int | None = None,
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
        "stopTimeout": 30,
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {"awslogs-group": log_group, "awslogs-region": region, "awslogs-stream-prefix": name},
        },
    }
