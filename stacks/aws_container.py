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
    """Every field ECS would otherwise fill in is written out, so a refresh shows no phantom diff,
    and tini runs as PID 1 (`initProcessEnabled`) so SIGTERM reaches Python and ends gracefully."""
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
        "linuxParameters": {"initProcessEnabled": True},
        "stopTimeout": 30,
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {"awslogs-group": log_group, "awslogs-region": region, "awslogs-stream-prefix": name},
        },
    }
