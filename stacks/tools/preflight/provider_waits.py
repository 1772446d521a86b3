"""Waits the providers make during `pulumi up`, against the time the clouds take: a wait that ends
first fails the `up` (and stops a pipeline) while the cloud carries on.

ECS services: terraform-provider-aws `internal/service/ecs/service.go` (at 00a919d1548e) gives
`aws_ecs_service` default timeouts of 20 minutes for create, update and delete (`Timeouts:` in
`ResourceService`, lines 52-56); with `wait_for_steady_state`, `resourceServiceUpdate` calls
`waitServiceStable(…, d.Timeout(schema.TimeoutUpdate))`, and stable means one deployment left with
`desiredCount == runningCount` (`wait.go`). A replaced task stays RUNNING, and its deployment listed,
until its load balancer target has drained: the target group's `deregistration_delay` (ELB's
default 300 s), then the container's `stopTimeout` (Fargate's default 30 s) before SIGKILL. So the
service's update timeout (and create's, for a first `up` with a drain) must outlast both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from stacks.tools.mocks import Registration, unwrap

PROVIDER_DEFAULT_TIMEOUT_SECONDS = 20 * 60  # service.go ResourceService Timeouts
ELB_DEFAULT_DEREGISTRATION_DELAY = 300  # target group attribute deregistration_delay.timeout_seconds
FARGATE_DEFAULT_STOP_TIMEOUT = 30
ECS_SERVICE = "aws:ecs/service:Service"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")


def duration_seconds(text: str) -> float:
    """A custom timeout as Pulumi passes it to the provider: a Go duration ("43m", "2580s", "1h5m")."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def _timeout(service: Registration, operation: str) -> float:
    given = service.custom_timeouts.get(operation)
    return duration_seconds(given) if given else PROVIDER_DEFAULT_TIMEOUT_SECONDS


def _drain_seconds(service: Registration, regs: list[Registration]) -> int:
    """The longest a replaced task of this service lingers: its targets' delay plus its stop timeout."""
    upstream = [r for r in regs if r.urn in service.dependencies]
    delays = [int(unwrap(r.inputs).get("deregistrationDelay") or ELB_DEFAULT_DEREGISTRATION_DELAY)
              for r in upstream if r.type == TARGET_GROUP]
    stops = [int(container.get("stopTimeout") or FARGATE_DEFAULT_STOP_TIMEOUT)
             for r in upstream if r.type == TASK_DEFINITION
             for container in json.loads(unwrap(r.inputs)["containerDefinitions"])]
    return (max(delays) if delays else 0) + (max(stops) if stops else FARGATE_DEFAULT_STOP_TIMEOUT)


def violations(registrations: Iterable[Registration]) -> list[str]:
    regs = list(registrations)
    found = []
    for service in (r for r in regs if r.type == ECS_SERVICE and unwrap(r.inputs).get("waitForSteadyState")):
        lingers = _drain_seconds(service, regs)
        for operation in ("create", "update"):
            waits = _timeout(service, operation)
            if waits <= lingers:
                found.append(f"{service.type} {service.name}: the provider waits {waits:.0f} s for steady state on "
                             f"{operation}, but a replaced task drains and stops for up to {lingers} s: "
                             f"`pulumi up` would fail while the rollout goes on (set custom_timeouts.{operation})")
    return found
