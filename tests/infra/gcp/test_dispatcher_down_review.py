"""Review of the GCP dispatcher-down policy (stacks/gcp/observability.py): an existing stack with alert
policies on failed its next `up`. It failed on the code as merged (the metric and its policy made together)."""

from __future__ import annotations

import json

from stacks.gcp.log_metrics_last_up import OUTPUT
from stacks.gcp.observability import LINES, log_metric_id
from stacks.tools.mocks import unwrap
from tests.infra.conftest import StackRunner
from tests.infra.gcp.test_observability import LOG_METRIC, PREFIX, policies

DOWN = f"{PREFIX}-dispatcher-down"
CONFIG = {"alertPolicies": "true", "dispatcherMinInstances": "1"}


def test_an_upgraded_stack_makes_no_policy_on_a_log_metric_created_in_the_same_up(stack: StackRunner) -> None:
    # The last `up` before this change: alert policies on, an instance kept, but no dispatcher-down policy
    # (and so no `metric-lines` metric) yet. Its outputs are what the stack reads back of itself.
    now = stack("gcp", **CONFIG)
    outputs = unwrap(now.completed[now.one("voicefleet:gcp:GcpStack").urn])
    # That release exported no `logMetrics` either (what this stack now reads to know a metric is old enough).
    before = {**{k: v for k, v in outputs.items() if k != OUTPUT},
              "alarmNames": [n for n in outputs["alarmNames"] if n != DOWN]}
    upgraded = stack("gcp", previous=before, **CONFIG)
    created = log_metric_id(PREFIX, LINES)
    assert created in {unwrap(m.inputs)["name"] for m in upgraded.of_type(LOG_METRIC)}
    # No policy of this `up` may read it: Monitoring would refuse the policy, failing the `up`.
    assert all(created not in json.dumps(policy) for policy in policies(upgraded).values())


def test_the_next_up_makes_the_policy_and_a_stack_that_had_it_keeps_it(stack: StackRunner) -> None:
    """The `up` after the one that made the metric makes the policy on it; a stack whose last `up` had the
    policy (its metric with it) keeps it, whether or not that `up` said which metrics it made."""
    first = stack("gcp", **CONFIG)
    assert DOWN not in policies(first)
    outputs = unwrap(first.completed[first.one("voicefleet:gcp:GcpStack").urn])
    assert log_metric_id(PREFIX, LINES) in outputs[OUTPUT] and DOWN not in outputs["alarmNames"]
    second = stack("gcp", previous=outputs, **CONFIG)
    assert DOWN in policies(second)
    had = unwrap(second.completed[second.one("voicefleet:gcp:GcpStack").urn])
    assert DOWN in had["alarmNames"]
    assert DOWN in policies(stack("gcp", previous={k: v for k, v in had.items() if k != OUTPUT}, **CONFIG))
