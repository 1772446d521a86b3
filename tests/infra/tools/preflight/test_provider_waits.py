"""The providers' own waits against what the clouds take (stacks/tools/preflight/provider_waits.py)."""

from __future__ import annotations

import dataclasses

import pytest

from stacks.config.phone import deregistration_delay
from stacks.tools.mocks import Run, unwrap
from stacks.tools.preflight import provider_waits
from tests.infra.conftest import StackRunner


def test_the_ecs_service_waits_longer_than_a_replaced_task_drains(stack: StackRunner) -> None:
    """N6: 1800 s calls drain for 1860 s; the provider's default 20-minute steady-state wait fails the up."""
    run: Run = stack("aws", maxSessionSeconds="1800")
    service = run.one(provider_waits.ECS_SERVICE)
    assert unwrap(service.inputs)["waitForSteadyState"] is True
    (targets,) = run.of_type(provider_waits.TARGET_GROUP)
    assert unwrap(targets.inputs)["deregistrationDelay"] == deregistration_delay(1800) == 1860
    assert provider_waits.violations(run.registrations) == []
    for operation in ("create", "update"):
        assert provider_waits.duration_seconds(service.custom_timeouts[operation]) > 1860 + 120
    as_it_was = dataclasses.replace(service, custom_timeouts={})  # the provider's 20 minutes
    found = provider_waits.violations([as_it_was, *(r for r in run.registrations if r is not service)])
    assert len(found) == 2 and "1200 s" in found[0] and "1980 s" in found[0]


def test_a_short_session_stack_passes_with_the_providers_default_too(stack: StackRunner) -> None:
    run: Run = stack("aws", maxSessionSeconds="600")
    service = run.one(provider_waits.ECS_SERVICE)
    plain = dataclasses.replace(service, custom_timeouts={})
    assert provider_waits.violations([plain, *(r for r in run.registrations if r is not service)]) == []


@pytest.mark.parametrize(("text", "seconds"), [("20m", 1200), ("2580s", 2580), ("1h5m", 3900), ("1.5h", 5400)])
def test_custom_timeouts_read_as_go_durations(text: str, seconds: float) -> None:
    assert provider_waits.duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "20", "20 m", "m"])
def test_a_duration_the_provider_would_not_parse_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        provider_waits.duration_seconds(text)
