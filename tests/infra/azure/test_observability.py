"""Azure: the workbook charts what the dispatcher writes on its metric lines, the sessions' cost included."""

from __future__ import annotations

import json
import re

import pytest

from dispatcher.observability.metric_catalogue import metric_names
from stacks.tools.mocks import Run, unwrap
from tests.infra.azure.test_sip_edge import run_azure_edge
from tests.infra.conftest import StackRunner

WORKBOOK = "azure-native:applicationinsights:Workbook"
RULE = "azure-native:monitor:ScheduledQueryRule"
ACTION_GROUP = ("/subscriptions/0b1f6a2e-3c4d-4e5f-8a9b-0c1d2e3f4a5b/resourceGroups/ops/providers/"
                "microsoft.insights/actionGroups/voicefleet-alarms")


def charts(run: Run) -> dict[str, str]:
    data = json.loads(unwrap(run.one(WORKBOOK).inputs)["serializedData"])
    return {item["name"]: item["content"]["query"] for item in data["items"]}


def test_the_workbook_reads_only_members_the_dispatcher_writes_and_charts_the_sessions_cost(
        stack: StackRunner) -> None:
    queries = charts(stack("azure"))
    read = {name for query in queries.values() for name in re.findall(r"\bm\.(\w+)", query)}
    assert read - {"metricNamespace", "Reason", "histogram", "value"} <= set(metric_names())
    (cost,) = (query for title, query in queries.items() if "cost" in title)
    assert set(re.findall(r"\bm\.(\w+)", cost)) >= {"SessionCostDollars", "SessionMachineSeconds",
                                                    "SessionIdleMachineSeconds"}


def test_a_stack_with_a_sip_edge_alerts_when_an_edge_stops_answering_or_a_trunk_is_refused(
        stack: StackRunner) -> None:
    run = run_azure_edge(stack, alarmActionGroupId=ACTION_GROUP)
    rules = {unwrap(r.inputs)["ruleName"]: unwrap(r.inputs) for r in run.of_type(RULE)}
    for key, name in (("sip-edge-not-answering", "SipEdgesNotAnswering"),
                      ("sip-edge-registration-refused", "SipEdgeRegistrationsRefused")):
        rule = rules[f"voicefleet-azure-test-{key}"]
        (criterion,) = rule["criteria"]["allOf"]
        # The most any replica reported in each minute, above 0 in 3 minutes running.
        assert set(re.findall(r"\bm\.(\w+)", criterion["query"])) == {"metricNamespace", name}
        assert f"value = max(todouble(m.{name}))" in criterion["query"]
        assert (criterion["operator"], criterion["threshold"], criterion["timeAggregation"],
                criterion["metricMeasureColumn"]) == ("GreaterThan", 0, "Maximum", "value")
        assert criterion["failingPeriods"] == {"numberOfEvaluationPeriods": 3, "minFailingPeriodsToAlert": 3}
        assert (rule["evaluationFrequency"], rule["windowSize"]) == ("PT1M", "PT1M")
        assert rule["actions"] == {"actionGroups": [ACTION_GROUP]}
        assert "docs/sip.md#is-the-edge-up" in rule["description"]
        # A dispatcher gone quiet leaves the query without rows, which a log alert counts healthy: the edge's
        # alert stays fired 10 minutes more, past the dispatcher-down alert's 5 minutes without a line.
        assert rule["autoMitigate"] is True
        assert rule["resolveConfiguration"] == {"autoResolved": True, "timeToResolve": "PT10M"}
    assert not any("sip-edge" in name for name in
                   (unwrap(r.inputs)["ruleName"] for r in stack("azure").of_type(RULE)))


def rules(run: Run) -> dict[str, dict]:
    return {unwrap(r.inputs)["ruleName"]: unwrap(r.inputs) for r in run.of_type(RULE)}


def test_a_dispatcher_always_running_that_writes_no_line_for_5_minutes_is_alerted(stack: StackRunner) -> None:
    """A log alert has no missing-data setting: the dispatcher-down alert counts this dispatcher's lines
    themselves, and fewer than 1 in 5 minutes (a replica writes one a minute) is the condition."""
    run = run_azure_edge(stack, alarmActionGroupId=ACTION_GROUP, dispatcherMinReplicas="1")
    rule = rules(run)["voicefleet-azure-test-dispatcher-down"]
    (criterion,) = rule["criteria"]["allOf"]
    assert criterion["query"] == ("ContainerAppConsoleLogs | where ContainerAppName == 'azure-test-dispatcher' "
                                  "| extend m = parse_json(Log) "
                                  "| where tostring(m.metricNamespace) == 'voicefleet/azure-test'")
    assert "metricMeasureColumn" not in criterion  # the rows counted, not a column's value
    assert (criterion["operator"], criterion["threshold"], criterion["timeAggregation"]) == ("LessThan", 1, "Count")
    assert criterion["failingPeriods"] == {"numberOfEvaluationPeriods": 1, "minFailingPeriodsToAlert": 1}
    assert (rule["evaluationFrequency"], rule["windowSize"]) == ("PT1M", "PT5M")
    assert rule["actions"] == {"actionGroups": [ACTION_GROUP]}
    assert "docs/operations.md#the-alarms" in rule["description"]


@pytest.mark.parametrize("config", [{"dispatcherMinReplicas": "0"}, {"dispatcherMinReplicas": "1", "drain": "true"}],
                         ids=["scaled-to-zero", "drained"])
def test_no_dispatcher_down_alert_where_no_replica_is_meant_to_run(stack: StackRunner, config: dict[str, str]) -> None:
    assert "voicefleet-azure-test-dispatcher-down" in rules(stack("azure", dispatcherMinReplicas="1"))
    assert "voicefleet-azure-test-dispatcher-down" not in rules(stack("azure", **config))
