"""A replaced dispatcher keeps relaying its calls: the ALB drains it for a whole call (docs/phone.md)."""

from __future__ import annotations

from stacks.phone_settings import ALB_MAX_DEREGISTRATION_DELAY, deregistration_delay


def test_the_drain_outlives_a_call_and_its_start_within_the_albs_maximum() -> None:
    assert deregistration_delay(1800) == 1860
    assert deregistration_delay(3540) == ALB_MAX_DEREGISTRATION_DELAY
    assert deregistration_delay(7200) == ALB_MAX_DEREGISTRATION_DELAY  # longer calls are cut: documented
