"""The log-based metrics and alert policies the stack's last `up` left, read back: what a policy on a
log-based metric waits for.

Cloud Monitoring refuses a policy whose filter names a log-based metric created less than about 10
minutes earlier (404 "Cannot find metric(s)", stacks/gcp/observability.py), so a metric and a policy
reading it cannot be made in the same `up`: the `up` fails. Each `up` exports the metrics it made
(`logMetrics`) and the policies (`alarmNames`); the next one reads them back through a StackReference to
the stack itself (as stacks/shared/releases.py reads its releases, known at a preview) and makes such a
policy only when the last `up` had made its metric, or had the policy already. A stack's first `up`,
or the first by a release that added the metric, makes the metric; the next `up` the policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi

from stacks.shared.releases import own_stack

OUTPUT = "logMetrics"  # the log-based metrics' names (logging.googleapis.com/user/<name>) the `up` made
POLICIES = "alarmNames"  # the alert policies' display names the `up` made (GcpStack's outputs)
READ = (OUTPUT, POLICIES)


@dataclass(frozen=True)
class LastUp:
    metrics: frozenset[str] = frozenset()
    policies: frozenset[str] = frozenset()

    @classmethod
    def of(cls, values: Mapping[str, object]) -> LastUp:
        def names(value: object) -> frozenset[str]:
            return frozenset(v for v in value if isinstance(v, str)) if isinstance(value, list) else frozenset()

        return cls(names(values.get(OUTPUT)), names(values.get(POLICIES)))

    def may_read(self, metric: str, policy: str) -> bool:
        """Whether a policy named `policy` reading the log-based metric `metric` may be made now: the metric
        was there at the last `up` (older than this one's start), or the policy was, with its metric."""
        return metric in self.metrics or policy in self.policies


def read(name: str, parent: pulumi.Resource) -> pulumi.Output[LastUp]:
    reference = pulumi.StackReference(f"{name}-log-metrics-last-up", stack_name=own_stack(),
                                      opts=pulumi.ResourceOptions(parent=parent))
    return pulumi.Output.all(*(reference.get_output(key) for key in READ)).apply(
        lambda values: LastUp.of(dict(zip(READ, values, strict=True))))
