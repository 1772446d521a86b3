"""GCP: log-based metrics for every member the dispatcher writes, a dashboard and alert policies
that read only those, notifying the configured channels."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from dispatcher.observability.metric_catalogue import METRICS, READY_BUCKETS, SAMPLE, metric_names
from stacks.config.reader import SettingsError
from stacks.gcp.observability import (
    FAILURES_BY_REASON,
    LINES,
    NO_DISPATCHER_DOWN,
    ObservabilityArgs,
    dashboard_body,
    log_metric_id,
    promql_name,
)
from stacks.tools.mocks import Run, unwrap
from tests.infra.conftest import CHANNEL_SECRETS, SECRETS, StackRunner
from tests.infra.gcp.test_sip_edge import run_gcp_edge

LOG_METRIC = "gcp:logging/metric:Metric"
POLICY = "gcp:monitoring/alertPolicy:AlertPolicy"
DASHBOARD = "gcp:monitoring/dashboard:Dashboard"
PREFIX = "voicefleet-gcp-test"
CHANNEL = "projects/vf-test/notificationChannels/1234567890"


def with_reserve_and_store(stack: StackRunner, **overrides: str) -> Run:
    # The channel gives a reserve; more than one instance with it, a shared store (Memorystore).
    return stack("gcp", secrets={**SECRETS, **CHANNEL_SECRETS}, dispatcherMaxInstances="2",
                 **{"alertPolicies": "true", **overrides})


def second_up(up: Callable[..., Run]) -> Run:
    """The stack's second `up` (`up` run again with the first's outputs as its last): a policy on a log-based
    metric waits for the metric to be older than the `up` (stacks/gcp/log_metrics_last_up.py)."""
    first = up()
    return up(previous=unwrap(first.completed[first.one("voicefleet:gcp:GcpStack").urn]))


def policies(run: Run) -> dict[str, dict]:
    return {unwrap(p.inputs)["displayName"]: unwrap(p.inputs) for p in run.of_type(POLICY)}


def queried(text: str) -> set[str]:
    """The log-based metrics a PromQL query reads, by their names in the dispatcher's lines."""
    by_promql = {promql_name(PREFIX, name): name for name in (*metric_names(), FAILURES_BY_REASON)}
    return {by_promql[m] for m in re.findall(r"(logging_googleapis_com:user_[a-z0-9_]+?)_(?:sum|count|bucket)\b", text)}


def test_the_dispatcher_writes_json_lines_into_the_stacks_namespace(gcp: Run) -> None:
    (service,) = gcp.of_type("gcp:cloudrunv2/service:Service")
    env = {e["name"]: e.get("value") for e in unwrap(service.inputs)["template"]["containers"][0]["envs"]}
    assert (env["METRIC_LINES"], env["METRIC_NAMESPACE"]) == ("json", "voicefleet/gcp-test")


def test_one_log_based_metric_per_member_the_dispatcher_writes(gcp: Run) -> None:
    found = {unwrap(m.inputs)["name"]: unwrap(m.inputs) for m in gcp.of_type(LOG_METRIC)}
    assert set(found) == {log_metric_id(PREFIX, n) for n in (*metric_names(), FAILURES_BY_REASON, LINES)}
    for spec in found.values():  # the dispatcher's stdout on Cloud Run only, never a bot VM's log
        assert spec["filter"].startswith(
            'logName="projects/vf-test/logs/run.googleapis.com%2Fstdout" AND resource.type="cloud_run_revision" AND '
            'resource.labels.service_name="voicefleet-gcp-test-dispatcher"'), spec["filter"]
    for metric in METRICS:
        spec = found[log_metric_id(PREFIX, metric.name)]
        assert 'jsonPayload.metricNamespace="voicefleet/gcp-test"' in spec["filter"]
        assert spec["metricDescriptor"]["valueType"] == "DISTRIBUTION"
        if metric.kind == "histogram":  # one entry per observation: the json mode's sample lines
            assert f'jsonPayload.{SAMPLE}="{metric.name}"' in spec["filter"]
            assert spec["valueExtractor"] == "EXTRACT(jsonPayload.value)"
        else:
            assert spec["valueExtractor"] == f"EXTRACT(jsonPayload.{metric.name})"
    # Time to ready keeps the dispatcher's own buckets, so its p95 agrees with /metrics.
    ready = found[log_metric_id(PREFIX, "TimeToReady")]
    assert ready["bucketOptions"]["explicitBuckets"]["bounds"] == list(READY_BUCKETS)


def test_dashboard_and_policies_read_only_those_metrics(stack: StackRunner) -> None:
    # An instance always kept: dispatcher-down too, at the second `up`.
    run = second_up(lambda **last: with_reserve_and_store(stack, dispatcherMinInstances="1", **last))
    found = policies(run)
    assert sorted(found) == [f"{PREFIX}-{n}" for n in ("dispatcher-down", "reserve-empty", "start-failure-rate",
                                                       "store-down", "time-to-ready-p95")]
    for policy in (p for name, p in found.items() if not name.endswith("-dispatcher-down")):
        (condition,) = policy["conditions"]
        read = queried(condition["conditionPrometheusQueryLanguage"]["query"])
        assert read and read <= set(metric_names())
        assert policy["notificationChannels"] == []
    assert queried(found[f"{PREFIX}-store-down"]["conditions"][0]["conditionPrometheusQueryLanguage"]["query"]) == {
        "StoreUp"}
    assert "histogram_quantile(0.95" in found[f"{PREFIX}-time-to-ready-p95"]["conditions"][0][
        "conditionPrometheusQueryLanguage"]["query"]

    body = json.loads(unwrap(run.one(DASHBOARD).inputs)["dashboardJson"])
    shown = set().union(*(queried(d["timeSeriesQuery"]["prometheusQuery"])
                          for t in body["mosaicLayout"]["tiles"] for d in t["widget"]["xyChart"]["dataSets"]))
    assert {"Starts", "WarmStarts", "ColdStarts", "TimeToReady", "ActiveSessions", "ReserveIdleBots",
            "ReserveIdleMachineSeconds", "PhoneFirstAudio", FAILURES_BY_REASON, "SessionCostDollars",
            "SessionMachineSeconds", "SessionIdleMachineSeconds"} <= shown


def test_outputs_and_channels(stack: StackRunner) -> None:
    run = with_reserve_and_store(stack, alarmNotificationChannels=json.dumps([CHANNEL]))
    assert all(p["notificationChannels"] == [CHANNEL] for p in policies(run).values())
    outputs = unwrap(run.completed[run.one("voicefleet:gcp:GcpStack").urn])
    assert outputs["dashboardUrl"].startswith("https://console.cloud.google.com/monitoring/dashboards/builder/")
    assert outputs["dashboardUrl"].endswith("?project=vf-test")
    assert sorted(outputs["alarmNames"]) == sorted(policies(run))


def test_a_stack_without_reserve_or_store_gets_only_the_policies_that_can_fire(stack: StackRunner) -> None:
    run = stack("gcp", alertPolicies="true")
    assert sorted(policies(run)) == [f"{PREFIX}-start-failure-rate", f"{PREFIX}-time-to-ready-p95"]


def test_the_first_up_creates_the_metrics_and_dashboard_but_no_policy_until_asked(stack: StackRunner) -> None:
    # Monitoring refuses a policy on a log-based metric younger than ~10 min: the first `up` of a
    # fresh project would fail on the policies, so they wait for alertPolicies (a second `up`).
    run = with_reserve_and_store(stack, alertPolicies="false")
    assert run.of_type(LOG_METRIC) and run.of_type(DASHBOARD)
    assert policies(run) == {}
    outputs = unwrap(run.completed[run.one("voicefleet:gcp:GcpStack").urn])
    assert outputs["alarmNames"] == []
    assert policies(stack("gcp", secrets={**SECRETS, **CHANNEL_SECRETS}, dispatcherMaxInstances="2")) == {}


def test_alert_policies_takes_only_true_or_false(stack: StackRunner) -> None:
    with pytest.raises(SettingsError, match="alertPolicies must be true or false"):
        stack("gcp", alertPolicies="yes")


def test_the_dashboard_holds_no_member_the_api_would_leave_out() -> None:
    # The API answers in proto3 JSON, without members equal to their default; one sent anyway
    # (xPos 0) reads back missing and every preview shows a dashboard diff.
    args = ObservabilityArgs(prefix=PREFIX, project="vf-test", namespace="voicefleet/gcp-test",
                             service_name="svc", reserve=True, store=True)

    def defaults(value: object, path: str) -> list[str]:
        if isinstance(value, dict):
            return [p for k, v in value.items() for p in ([f"{path}.{k}"] if v in (0, "", [], {}) else [])
                    + defaults(v, f"{path}.{k}")]
        if isinstance(value, list):
            return [p for i, v in enumerate(value) for p in defaults(v, f"{path}[{i}]")]
        return []

    body = dashboard_body(args)
    assert defaults(body, "") == []
    tiles = body["mosaicLayout"]["tiles"]
    assert "xPos" not in tiles[0] and "yPos" not in tiles[0] and tiles[1]["xPos"] == 24 and tiles[2]["yPos"] == 16


@pytest.mark.parametrize("channel", ["projects/other/notificationChannels/1", "my-pager"])
def test_a_channel_elsewhere_or_misnamed_is_refused(stack: StackRunner, channel: str) -> None:
    with pytest.raises(SettingsError, match="alarmNotificationChannels"):
        stack("gcp", alarmNotificationChannels=json.dumps([channel]))


def test_a_stack_with_a_sip_edge_alerts_when_an_edge_stops_answering_or_a_trunk_is_refused(
        stack: StackRunner) -> None:
    run = run_gcp_edge(stack, alertPolicies="true", alarmNotificationChannels=json.dumps([CHANNEL]))
    found = policies(run)
    for key, name in (("sip-edge-not-answering", "SipEdgesNotAnswering"),
                      ("sip-edge-registration-refused", "SipEdgeRegistrationsRefused")):
        policy = found[f"{PREFIX}-{key}"]
        (condition,) = policy["conditions"]
        promql = condition["conditionPrometheusQueryLanguage"]
        # The instances' mean is above 0 once one of them counted an edge down, for 3 minutes.
        assert queried(promql["query"]) == {name} and promql["query"].endswith(" > 0")
        assert (promql["duration"], promql["evaluationInterval"]) == ("180s", "60s")
        assert policy["notificationChannels"] == [CHANNEL]
        assert "docs/sip.md#is-the-edge-up" in policy["documentation"]["content"]
    outputs = unwrap(run.completed[run.one("voicefleet:gcp:GcpStack").urn])
    assert sorted(outputs["alarmNames"]) == sorted(found)


def test_a_dispatcher_always_running_that_writes_no_line_for_5_minutes_is_paged(stack: StackRunner) -> None:
    """With an instance always kept (and its CPU always on) a line arrives every minute: none from any
    instance for 5 minutes is a dispatcher down, which the edge's and store's policies cannot see (a PromQL
    query without data fires nothing). The lines are counted by a log-based metric of their own."""
    run = second_up(lambda **last: run_gcp_edge(stack, alertPolicies="true", dispatcherMinInstances="1",
                                                alarmNotificationChannels=json.dumps([CHANNEL]), **last))
    metrics = {unwrap(m.inputs)["name"]: unwrap(m.inputs) for m in run.of_type(LOG_METRIC)}
    lines = metrics[f"{PREFIX}-metric-lines"]
    # Every line of this dispatcher's (the others' filter, with no member required), counted.
    assert lines["filter"] == ('logName="projects/vf-test/logs/run.googleapis.com%2Fstdout" AND '
                               'resource.type="cloud_run_revision" AND '
                               'resource.labels.service_name="voicefleet-gcp-test-dispatcher" AND '
                               'jsonPayload.metricNamespace="voicefleet/gcp-test"')
    assert lines["metricDescriptor"] == {"metricKind": "DELTA", "valueType": "INT64", "unit": "1"}
    assert "valueExtractor" not in lines
    policy = policies(run)[f"{PREFIX}-dispatcher-down"]
    (condition,) = policy["conditions"]
    absent = condition["conditionAbsent"]
    assert absent["filter"] == (f'metric.type="logging.googleapis.com/user/{PREFIX}-metric-lines" AND '
                                'resource.type="cloud_run_revision"')
    assert absent["duration"] == "300s" and absent["trigger"] == {"count": 1}
    # One series of all instances and revisions: a release's old revision going quiet is not an absence.
    assert absent["aggregations"] == [{"alignmentPeriod": "60s", "perSeriesAligner": "ALIGN_SUM",
                                       "crossSeriesReducer": "REDUCE_SUM"}]
    assert policy["notificationChannels"] == [CHANNEL]
    assert "docs/operations.md#the-alarms" in policy["documentation"]["content"]


@pytest.mark.parametrize("config", [{}, {"dispatcherMinInstances": "1", "drain": "true"}],
                         ids=["scaled-to-zero", "drained"])
def test_no_dispatcher_down_policy_where_no_instance_is_meant_to_run(
        stack: StackRunner, config: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Scaled to zero an idle dispatcher writes no line, as a dispatcher down does; drained, none runs.
    Scaled to zero, `up` says so and how to have one; drained, it says nothing of it."""
    assert f"{PREFIX}-dispatcher-down" in policies(second_up(
        lambda **last: stack("gcp", alertPolicies="true", dispatcherMinInstances="1", **last)))
    warned: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda message, *args, **kwargs: warned.append(str(message)))
    assert f"{PREFIX}-dispatcher-down" not in policies(second_up(
        lambda **last: stack("gcp", alertPolicies="true", **config, **last)))
    assert (NO_DISPATCHER_DOWN in warned) == ("drain" not in config)
