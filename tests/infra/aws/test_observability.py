"""AWS: the dashboard and alarms exist, read the metrics the dispatcher writes, and notify where told."""

from __future__ import annotations

import json
import re

import pytest

from dispatcher.observability.metric_catalogue import DIMENSION, metric_names
from stacks.config.reader import SettingsError
from stacks.tools.mocks import Run, unwrap
from tests.infra.aws.test_sip_edge import run_with_edge
from tests.infra.aws.test_store import STORE_SECRETS, two_replicas
from tests.infra.conftest import CHANNEL, CHANNEL_SECRETS, SECRETS, StackRunner
from tests.infra.helpers import container

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:voicefleet-alarms"


def alarms(run: Run) -> dict[str, dict]:
    return {unwrap(a.inputs)["name"]: unwrap(a.inputs) for a in run.of_type(ALARM)}


def named_metrics(alarm: dict) -> set[str]:
    found = {alarm["metricName"]} if "metricName" in alarm else set()
    return found | {q["metric"]["metricName"] for q in alarm.get("metricQueries", []) if "metric" in q}


def test_the_dispatcher_writes_emf_into_the_stacks_namespace(aws: Run) -> None:
    env = {e["name"]: e["value"] for e in container(aws, "-dispatcher")["environment"]}
    assert (env["METRIC_LINES"], env["METRIC_NAMESPACE"]) == ("emf", "voicefleet/aws-test")


def test_dashboard_and_alarms_read_only_metrics_the_dispatcher_writes(stack: StackRunner) -> None:
    run = two_replicas(stack)  # reserve (channel) and store: all four alarms on the lines, the balancer's, the cache's
    found = alarms(run)
    assert sorted(found) == [f"voicefleet-aws-test-{n}" for n in ("dispatcher-down", "reserve-empty",
                                                                  "start-failure-rate", "store-down", "store-full",
                                                                  "time-to-ready-p95")]
    for alarm in (a for name, a in found.items() if not name.endswith(("-dispatcher-down", "-store-full"))):
        assert named_metrics(alarm) and named_metrics(alarm) <= set(metric_names())
        for query in [alarm, *(q["metric"] for q in alarm.get("metricQueries", []) if "metric" in q)]:
            if "metricName" in query:
                assert query["namespace"] == "voicefleet/aws-test" and query["dimensions"] == {DIMENSION: "ecs"}
        assert alarm["alarmActions"] == [] and alarm["treatMissingData"] in {"notBreaching", "missing"}
    assert found["voicefleet-aws-test-time-to-ready-p95"]["extendedStatistic"] == "p95"
    assert found["voicefleet-aws-test-store-down"]["metricName"] == "StoreUp"

    body = json.loads(unwrap(run.one(DASHBOARD).inputs)["dashboardBody"])
    shown = {m[1] for w in body["widgets"] for m in w["properties"]["metrics"] if isinstance(m[0], str)}
    searched = {n for w in body["widgets"] for m in w["properties"]["metrics"] if isinstance(m[0], dict)
                for n in re.findall(r'MetricName="(\w+)"', m[0]["expression"])}
    assert shown | searched <= set(metric_names())
    assert {"Starts", "WarmStarts", "ColdStarts", "TimeToReady", "ActiveSessions", "StartFailures",
            "ReserveIdleBots", "ReserveIdleMachineSeconds", "PhoneFirstAudio", "SessionCostDollars",
            "SessionMachineSeconds", "SessionIdleMachineSeconds"} <= shown | searched


def test_a_store_three_quarters_full_alarms_before_elasticache_evicts_the_dispatchers_records(
        stack: StackRunner) -> None:
    """At its data maximum ElastiCache Serverless evicts keys with a TTL before it refuses a write, and no
    policy of the cache's changes that: the alarm at AWS's advised 75 % is the warning before leases go."""
    secrets = {**SECRETS, **CHANNEL_SECRETS, **STORE_SECRETS}
    run = stack("aws", secrets=secrets, alarmTopicArn=TOPIC, storeDataGb="3",
                **{**CHANNEL["aws"], "dispatcherCount": "2"})
    alarm = alarms(run)["voicefleet-aws-test-store-full"]
    (cache,) = run.of_type("aws:elasticache/serverlessCache:ServerlessCache")
    assert (alarm["namespace"], alarm["metricName"], alarm["dimensions"]) == (
        "AWS/ElastiCache", "BytesUsedForCache", {"clusterId": unwrap(cache.inputs)["name"]})
    assert (alarm["statistic"], alarm["comparisonOperator"], alarm["threshold"]) == (
        "Maximum", "GreaterThanOrEqualToThreshold", 2_250_000_000)  # 75 % of 3 GB
    assert alarm["alarmActions"] == alarm["okActions"] == [TOPIC]
    assert "storeDataGb" in alarm["alarmDescription"] and "evicts" in alarm["alarmDescription"]
    outputs = unwrap(run.completed[run.one("voicefleet:aws:AwsStack").urn])
    assert "voicefleet-aws-test-store-full" in outputs["alarmNames"]


def test_a_stack_without_reserve_or_store_gets_only_the_alarms_that_can_fire(aws: Run) -> None:
    assert sorted(alarms(aws)) == ["voicefleet-aws-test-dispatcher-down", "voicefleet-aws-test-start-failure-rate",
                                   "voicefleet-aws-test-time-to-ready-p95"]
    # Every start is cold there: only a slow cold start is news.
    assert alarms(aws)["voicefleet-aws-test-time-to-ready-p95"]["threshold"] == 90


def test_outputs_name_the_dashboard_and_the_alarms(aws: Run) -> None:
    outputs = unwrap(aws.completed[aws.one("voicefleet:aws:AwsStack").urn])  # what the program exports
    assert outputs["dashboardUrl"] == ("https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1"
                                       "#dashboards/dashboard/voicefleet-aws-test")
    assert sorted(outputs["alarmNames"]) == sorted(alarms(aws))


def test_alarms_notify_the_configured_topic(stack: StackRunner) -> None:
    run = stack("aws", alarmTopicArn=TOPIC)
    assert all(a["alarmActions"] == [TOPIC] and a["okActions"] == [TOPIC] for a in alarms(run).values())


@pytest.mark.parametrize("arn", ["arn:aws:sns:us-east-1:123456789012:alarms", "alarms",
                                 "arn:aws:sqs:eu-west-1:123456789012:alarms"])
def test_a_topic_elsewhere_or_not_a_topic_is_refused(stack: StackRunner, arn: str) -> None:
    with pytest.raises(SettingsError, match="alarmTopicArn"):
        stack("aws", secrets={**SECRETS, **CHANNEL_SECRETS}, alarmTopicArn=arn, **CHANNEL["aws"])


def test_a_stack_with_a_sip_edge_alarms_when_an_edge_stops_answering_or_a_trunk_is_refused(
        stack: StackRunner) -> None:
    run = run_with_edge(stack, alarmTopicArn=TOPIC)
    found = alarms(run)
    for key, name in (("sip-edge-not-answering", "SipEdgesNotAnswering"),
                      ("sip-edge-registration-refused", "SipEdgeRegistrationsRefused")):
        alarm = found[f"voicefleet-aws-test-{key}"]
        assert (alarm["namespace"], alarm["metricName"], alarm["dimensions"]) == (
            "voicefleet/aws-test", name, {DIMENSION: "ecs"})
        # The most any replica reported, above 0 in each of 3 minutes.
        assert (alarm["statistic"], alarm["period"], alarm["evaluationPeriods"], alarm["datapointsToAlarm"],
                alarm["comparisonOperator"], alarm["threshold"]) == ("Maximum", 60, 3, 3, "GreaterThanThreshold", 0)
        # A dispatcher gone quiet leaves it without data: never OK (no OK notification), never an edge page.
        assert alarm["treatMissingData"] == "missing"
        assert alarm["alarmActions"] == alarm["okActions"] == [TOPIC]
        assert "docs/sip.md#is-the-edge-up" in alarm["alarmDescription"]
    outputs = unwrap(run.completed[run.one("voicefleet:aws:AwsStack").urn])
    assert sorted(outputs["alarmNames"]) == sorted(found)


def test_a_dispatcher_with_no_healthy_task_pages_whatever_its_lines_say(stack: StackRunner) -> None:
    """The one alarm that does not read the dispatcher's lines: the balancer's count of healthy tasks, which it
    reports while health checks run, so a dispatcher down (and an edge down with it) still pages someone."""
    run = run_with_edge(stack, alarmTopicArn=TOPIC)
    alarm = alarms(run)["voicefleet-aws-test-dispatcher-down"]
    balancer = unwrap(run.one("aws:lb/loadBalancer:LoadBalancer").outputs)
    (targets,) = [unwrap(t.outputs) for t in run.of_type("aws:lb/targetGroup:TargetGroup")]
    assert (alarm["namespace"], alarm["metricName"], alarm["dimensions"]) == (
        "AWS/ApplicationELB", "HealthyHostCount",
        {"TargetGroup": targets["arnSuffix"], "LoadBalancer": balancer["arnSuffix"]})
    assert targets["arnSuffix"].startswith("targetgroup/") and balancer["arnSuffix"].startswith("app/")
    # No healthy task in each of 3 minutes; no datapoint at all is no healthy task either.
    assert (alarm["statistic"], alarm["period"], alarm["evaluationPeriods"], alarm["datapointsToAlarm"],
            alarm["comparisonOperator"], alarm["threshold"], alarm["treatMissingData"]) == (
        "Minimum", 60, 3, 3, "LessThanThreshold", 1, "breaching")
    assert alarm["alarmActions"] == alarm["okActions"] == [TOPIC]
    assert "docs/operations.md#the-alarms" in alarm["alarmDescription"]
    # Made once the service is steady (its first task healthy), not over a new stack's first minutes.
    made = run.one(ALARM, "voicefleet-aws-test-observability-dispatcher-down")
    assert run.one("aws:ecs/service:Service").urn in made.depends_on


def test_a_drained_stack_keeps_its_dispatcher_down_alarm_silent(stack: StackRunner) -> None:
    """Drained before a destroy, no task is meant to run: the alarm would page for the drain itself, so its
    actions are off; an `up` without `drain` turns them on again."""
    up = alarms(stack("aws", alarmTopicArn=TOPIC))["voicefleet-aws-test-dispatcher-down"]
    assert up.get("actionsEnabled", True) is True and up["alarmActions"] == [TOPIC]
    drained = stack("aws", drain="true", alarmTopicArn=TOPIC)
    assert unwrap(drained.one("aws:ecs/service:Service").inputs)["desiredCount"] == 0
    assert alarms(drained)["voicefleet-aws-test-dispatcher-down"]["actionsEnabled"] is False
