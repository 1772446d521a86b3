"""Review of the AWS dispatcher-down alarm (stacks/aws/observability.py): the drain `up` before a destroy
paged it. It failed on the code as merged (the alarm left out of a drained program)."""

from __future__ import annotations

from stacks.tools.mocks import unwrap
from tests.infra.aws.test_observability import ALARM, alarms
from tests.infra.conftest import StackRunner

DOWN = "voicefleet-aws-test-dispatcher-down"


def test_a_drain_up_cannot_page_dispatcher_down_while_its_tasks_drain(stack: StackRunner) -> None:
    drained = stack("aws", drain="true")
    service = drained.one("aws:ecs/service:Service")
    inputs = unwrap(service.inputs)
    # The drain's own step: the service goes to 0 tasks and `up` waits for it (minutes, with calls on).
    assert inputs["desiredCount"] == 0 and inputs["waitForSteadyState"] is True
    # An alarm still to page must be silenced by a step that does not wait behind that one: declared with its
    # actions off and not made after the service (a resource left out is deleted last, once the drain is over).
    alarm = alarms(drained).get(DOWN)
    assert alarm is not None and alarm.get("actionsEnabled") is False
    made = drained.one(ALARM, "voicefleet-aws-test-observability-dispatcher-down")
    assert service.urn not in made.depends_on
