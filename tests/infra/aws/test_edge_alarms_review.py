"""Review test: a stack with a SIP edge pages someone when its dispatcher writes no metric lines. The edge
alarms (stacks/aws/observability.py) treat missing data as `missing`, so a dead dispatcher moves them to
INSUFFICIENT_DATA: a dispatcher and an edge down together (one host's network, a bad release of the image
both run) must still page through an alarm that reads the dispatcher's own liveness (the dispatcher-down
alarm: its target group's healthy hosts) or that notifies when the lines go missing."""

from __future__ import annotations

from tests.infra.aws.test_observability import TOPIC, alarms
from tests.infra.aws.test_sip_edge import run_with_edge
from tests.infra.conftest import StackRunner


def test_a_dispatcher_that_writes_no_lines_is_paged_where_the_edge_alarms_go_silent(stack: StackRunner) -> None:
    found = alarms(run_with_edge(stack, alarmTopicArn=TOPIC))
    edge = [a for name, a in found.items() if "-sip-edge-" in name]
    assert edge and all(a["treatMissingData"] == "missing" for a in edge)  # as the change built them
    told_when_silent = [name for name, a in found.items()
                        if TOPIC in (a.get("insufficientDataActions") or [])
                        or (a.get("treatMissingData") == "breaching" and TOPIC in a["alarmActions"])
                        or a.get("metricName") in ("HealthyHostCount", "UnHealthyHostCount")]
    assert told_when_silent, "every alarm stays quiet when the dispatcher writes nothing"
