"""Every secret a service references is readable by its identity (stacks/tools/preflight/secret_access.py):
Cloud Run fails a deployment otherwise, ECS a task's start."""

from __future__ import annotations

import pytest

from stacks.tools.mocks import Run
from stacks.tools.preflight import secret_access
from tests.infra.config.test_observability import OBSERVABILITY
from tests.infra.config.test_store_message_secret import AWS_REPLICAS, GCP_REPLICAS, WITH_ACCEPTED
from tests.infra.conftest import StackRunner

ENDPOINT, WEBHOOK = "https://otlp.example.com", "https://hooks.example.com/voicefleet"


def full(stack: StackRunner, cloud: str) -> Run:
    """Every optional secret the dispatcher can reference: collector headers, webhook, accepted message key."""
    return stack(cloud, secrets={**WITH_ACCEPTED, **OBSERVABILITY}, otelExporterOtlpEndpoint=ENDPOINT,
                 webhookUrl=WEBHOOK, **(AWS_REPLICAS if cloud == "aws" else GCP_REPLICAS))


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_every_secret_a_dispatcher_or_bot_references_is_readable_by_it(stack: StackRunner, cloud: str) -> None:
    assert secret_access.violations(full(stack, cloud).registrations) == []


def test_a_cloud_run_secret_without_its_grant_is_found(stack: StackRunner) -> None:
    run = full(stack, "gcp")
    rest = [r for r in run.registrations if not r.name.endswith("-webhook-secret-dispatcher")]
    (found,) = secret_access.violations(rest)
    assert "WEBHOOK_SECRET" in found and "Cloud Run fails the deployment" in found


def test_a_task_secret_outside_its_execution_role_policy_is_found(stack: StackRunner) -> None:
    run = full(stack, "aws")
    rest = [r for r in run.registrations if not r.name.endswith("-read-dispatcher")]
    found = secret_access.violations(rest)
    assert found and all("-dispatcher:" in f and "execution role may not read" in f for f in found)
    assert any("REDIS_ACCEPTED_MESSAGE_SECRET" in f for f in found)
