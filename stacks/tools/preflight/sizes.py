"""Size and value tables the clouds enforce at create time, checked on the registered inputs.

The tables live in stacks/config/limits.py (with their sources); settings.py refuses bad config
with a message naming the key, and this module proves what the program actually sends obeys them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from stacks.config import limits
from stacks.tools.mocks import Registration, unwrap

_ARCH_PLATFORM = {"X86_64": "linux/amd64", "ARM64": "linux/arm64"}


def _mib(quantity: str) -> int | None:
    match = re.fullmatch(r"(\d+)(Mi|Gi)", quantity)
    if not match:
        return None
    return int(match[1]) * (1024 if match[2] == "Gi" else 1)


def _task_definition(reg: Registration, inputs: dict[str, Any], platforms: set[str]) -> Iterator[str]:
    if "FARGATE" not in (inputs.get("requiresCompatibilities") or []):
        return
    cpu, memory = int(inputs["cpu"]), int(inputs["memory"])
    allowed = limits.FARGATE_MEMORY.get(cpu)
    if allowed is None or memory not in allowed:
        yield (f"{reg.type} {reg.name}: Fargate has no {cpu} CPU / {memory} MiB task size "
               f"(allowed for {cpu}: {allowed})")
    arch = (inputs.get("runtimePlatform") or {}).get("cpuArchitecture", "X86_64")
    if platforms and _ARCH_PLATFORM.get(arch) not in platforms:
        yield f"{reg.type} {reg.name}: runs on {arch} but the images are built for {sorted(platforms)} only"


def _cloud_run(reg: Registration, inputs: dict[str, Any]) -> Iterator[str]:
    for container in (inputs.get("template") or {}).get("containers") or []:
        resource_limits = (container.get("resources") or {}).get("limits") or {}
        cpu, memory = str(resource_limits.get("cpu", "1")), _mib(str(resource_limits.get("memory", "512Mi")))
        ceiling = limits.CLOUD_RUN_MAX_MEMORY_MIB.get(cpu)
        if ceiling is None or memory is None or not limits.CLOUD_RUN_MIN_MEMORY_MIB <= memory <= ceiling:
            yield f"{reg.type} {reg.name}: Cloud Run has no cpu={cpu} with memory={resource_limits.get('memory')}"


def violations(registrations: Iterable[Registration]) -> list[str]:
    regs = list(registrations)
    image_platforms: set[str] = set()
    for reg in regs:
        if reg.type == "docker-build:index:Image":
            image_platforms |= set(unwrap(reg.inputs).get("platforms") or [])
    found: list[str] = []
    for reg in regs:
        inputs = unwrap(reg.inputs)
        if reg.type == "aws:ecs/taskDefinition:TaskDefinition":
            found.extend(_task_definition(reg, inputs, image_platforms))
        elif reg.type == "aws:cloudwatch/logGroup:LogGroup":
            if inputs.get("retentionInDays") not in limits.LOG_RETENTION_DAYS:
                days = inputs.get("retentionInDays")
                found.append(f"{reg.type} {reg.name}: retention {days} is not a CloudWatch period")
        elif reg.type == "aws:lb/loadBalancer:LoadBalancer":
            low, high = limits.ALB_IDLE_TIMEOUT
            if not low <= int(inputs.get("idleTimeout", 60)) <= high:
                found.append(f"{reg.type} {reg.name}: idle timeout {inputs.get('idleTimeout')} outside {low}..{high}")
        elif reg.type == "aws:secretsmanager/secret:Secret":
            days = int(inputs.get("recoveryWindowInDays", 30))
            low, high = limits.SECRET_RECOVERY_DAYS
            if days != 0 and not low <= days <= high:
                found.append(f"{reg.type} {reg.name}: recovery window {days} is not 0 or {low}..{high}")
        elif reg.type == "gcp:compute/instanceTemplate:InstanceTemplate":
            seconds = ((inputs.get("scheduling") or {}).get("maxRunDuration") or {}).get("seconds")
            low, high = limits.GCE_MAX_RUN_SECONDS
            if seconds is not None and not low <= int(seconds) <= high:
                found.append(f"{reg.type} {reg.name}: maxRunDuration {seconds}s outside {low}..{high}")
        elif reg.type == "gcp:cloudrunv2/service:Service":
            found.extend(_cloud_run(reg, inputs))
    return found
