"""Component resources as the engine sees them: each one registers its outputs, which is how the
engine learns it is complete (until then it shows as still being created) and what its outputs
are in the stack's state."""

from __future__ import annotations

import pytest

from stacks.tools.mocks import Run, unwrap
from tests.infra.conftest import StackRunner


def components(run: Run) -> list[str]:
    return [r.urn for r in run.registrations if not r.custom and not r.type.startswith("pulumi:providers:")]


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_every_component_registers_its_outputs(stack: StackRunner, cloud: str) -> None:
    run = stack(cloud)
    assert components(run)
    assert [urn for urn in components(run) if urn not in run.completed] == []


def test_the_bot_runtime_reports_the_task_definition_the_dispatcher_runs(aws: Run) -> None:
    (runtime,) = [r for r in aws.registrations if r.type == "voicefleet:aws:BotRuntime"]
    outputs = unwrap(aws.completed[runtime.urn])
    family = outputs["family"]
    assert family == "voicefleet-aws-test-bot"
    assert outputs["task_definition_arn"] == f"arn:aws:ecs:eu-west-1:123456789012:task-definition/{family}:1"
    assert outputs["log_group_name"] == f"/ecs/{family}"
