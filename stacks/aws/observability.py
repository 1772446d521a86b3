"""What an operator looks at on AWS: the dispatcher's metrics in CloudWatch, one dashboard, up to eight alarms.

The metrics come from the dispatcher's own log lines (dispatcher/observability/metric_lines.py, `METRIC_LINES=emf`):
CloudWatch Logs extracts embedded-metric-format lines from the task's `awslogs` stream itself (the
ECS driver calls PutLogEvents, which needs no `x-amzn-logs-format` header for EMF:
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Generation_PutLogEvents.html),
so there is no collector sidecar to run, pay for or secure. Every metric name below comes from that
module, never typed twice.

Alarms (docs/operations.md says what to check when one fires):
  start failure rate      failures / (starts + failures) over 5 minutes, twice in a row
  time to ready p95       the p95 CloudWatch computes from the lines' histogram values
  reserve empty           starts that found no idle bot (cold misses) in 3 of 5 minutes; stacks with
                          a reserve only (the bot channel)
  store down              the store unreachable as `/healthz` reports it; stacks with a store only
  store full              the store's BytesUsedForCache at 75 % of its data maximum (AWS/ElastiCache)
  sip edge not answering  an edge in SIP_EDGE_URL did not answer its status for 3 minutes; stacks with
                          a SIP edge (`sipEdge`) only
  sip edge registration   a trunk's registrar refused the edge's REGISTER (or never answered) for 3
  refused                 minutes; stacks with a SIP edge only
  dispatcher down         the balancer counted no healthy dispatcher task for 3 minutes (AWS/ApplicationELB
                          HealthyHostCount, which the balancer reports while health checks are on, whatever
                          the dispatcher writes); a drained stack keeps it with its actions off
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws.cloudwatch as aws_cloudwatch

from dispatcher.observability.metric_catalogue import DIMENSION, REASON, metric_names
from stacks.config.alarms import (
    FAILURE_RATE_PERCENT,
    READY_P95_SECONDS_COLD,
    READY_P95_SECONDS_WARM,
    STORE_FULL_PERCENT,
)
from stacks.config.store_ceiling import GB
from stacks.shared.dispatcher_alarm import DISPATCHER_DOWN, dispatcher_down_description
from stacks.shared.sip_edge_alarms import SIP_EDGE_ALARMS

PROVIDER = "ecs"  # the lines' `Provider` dimension: the machines provider's name
PERIOD = 60  # seconds: the lines are written every METRIC_LINES_SECONDS (60)
ALARM_PERIOD = 300
BALANCER_NAMESPACE = "AWS/ApplicationELB"
# ElastiCache publishes a serverless cache's metrics under `clusterId`, the cache's name (not a node-based
# cluster's CacheClusterId: docs.aws.amazon.com/AmazonElastiCache/latest/dg/serverless-metrics-events-redis.html).
STORE_NAMESPACE, STORE_DIMENSION = "AWS/ElastiCache", "clusterId"
DOWN_MINUTES = 3  # the balancer marks a task unhealthy after 3 failed checks 15 s apart; then 3 minutes at 0

_NAMES = frozenset(metric_names())


def metric(name: str) -> str:
    """A metric the dispatcher writes; a name it does not write fails the program, not the dashboard."""
    if name not in _NAMES:
        raise ValueError(f"dispatcher/observability/metric_lines.py writes no metric {name!r}")
    return name


def metric_environment(namespace: str) -> dict[str, str]:
    """The dispatcher's part: EMF lines in this stack's namespace (stacks/shared/contract.py METRIC_LINES_ENV)."""
    return {"METRIC_LINES": "emf", "METRIC_NAMESPACE": namespace}


@dataclass(frozen=True)
class ObservabilityArgs:
    prefix: str  # names: the dashboard and each alarm
    namespace: str  # voicefleet/<stack>
    region: str
    reserve: bool  # the stack keeps a warm reserve (it has the bot channel)
    store: bool  # several replicas share a coordination store
    alarm_topic_arn: str | None = None
    # The store's serverless cache and its data maximum (storeDataGb): the store-full alarm is made with them.
    store_cache: str | None = None
    store_data_gb: int = 1
    sip_edge: bool = False  # the stack runs a SIP edge (`sipEdge`), which the dispatcher asks
    # The dispatcher's target group and balancer (CloudWatch's TargetGroup and LoadBalancer dimensions): the
    # dispatcher-down alarm is made with them.
    dispatcher_targets: Mapping[str, pulumi.Input[str]] | None = None
    # What the dispatcher-down alarm is made after: the service, steady once its tasks passed their checks,
    # so a new stack's alarm does not fire over the minutes its first task takes to start.
    dispatcher_ready: Sequence[pulumi.Resource] = ()
    # Before a destroy no task is meant to run: the dispatcher-down alarm stays, its actions off, and is
    # not made after the service. Left out, Pulumi would delete it last, once the service's scale to 0 had
    # waited for steady state (its tasks draining for minutes, counted unhealthy): it would page meanwhile.
    drained: bool = False


class Observability(pulumi.ComponentResource):
    dashboard_url: pulumi.Output[str]
    alarm_names: pulumi.Output[list[str]]

    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:aws:Observability", name, None, opts)
        self._args = args
        child = pulumi.ResourceOptions(parent=self)
        dashboard = aws_cloudwatch.Dashboard(name, dashboard_name=args.prefix,
                                             dashboard_body=json.dumps(dashboard_body(args)), opts=child)
        after_dispatcher = pulumi.ResourceOptions(parent=self, depends_on=[] if args.drained
                                                  else list(args.dispatcher_ready))
        alarms = [aws_cloudwatch.MetricAlarm(f"{name}-{key}", **spec,
                                             opts=after_dispatcher if key == DISPATCHER_DOWN else child)
                  for key, spec in alarm_specs(args).items()]
        self.dashboard_url = pulumi.Output.concat(
            "https://", args.region, ".console.aws.amazon.com/cloudwatch/home?region=", args.region,
            "#dashboards/dashboard/", dashboard.dashboard_name)
        self.alarm_names = pulumi.Output.all(*[a.name for a in alarms]).apply(list)
        self.register_outputs({"dashboard_url": self.dashboard_url, "alarm_names": self.alarm_names})


def _dimensions() -> dict[str, str]:
    return {DIMENSION: PROVIDER}


def _series(args: ObservabilityArgs, name: str, stat: str, **options: Any) -> list[Any]:
    return [args.namespace, metric(name), DIMENSION, PROVIDER, {"stat": stat, **options}]


def _widget(title: str, metrics: Sequence[list[Any]], args: ObservabilityArgs, *, x: int, y: int,
            unit_label: str = "") -> dict[str, Any]:
    return {"type": "metric", "x": x, "y": y, "width": 12, "height": 6,
            "properties": {"title": title, "region": args.region, "view": "timeSeries", "period": PERIOD,
                           "metrics": list(metrics), **({"yAxis": {"left": {"label": unit_label}}}
                                                        if unit_label else {})}}


def dashboard_body(args: ObservabilityArgs) -> dict[str, Any]:
    """Widgets in the order an operator asks: are calls starting, how fast, what failed, what it costs."""
    failures_by_reason = (f"SEARCH('{{{args.namespace},{DIMENSION},{REASON}}} "
                          f"MetricName=\"{metric('StartFailures')}\"', 'Sum', {PERIOD})")
    widgets = [
        _widget("Starts and failures", [_series(args, "Starts", "Sum"), _series(args, "StartFailures", "Sum")],
                args, x=0, y=0),
        _widget("Warm share (%)", [
            _series(args, "WarmStarts", "Sum", id="warm", visible=False),
            _series(args, "ColdStarts", "Sum", id="cold", visible=False),
            [{"expression": "100 * FILL(warm, 0) / (FILL(warm, 0) + FILL(cold, 0))", "label": "warm share",
              "id": "share"}]], args, x=12, y=0, unit_label="%"),
        _widget("Time to ready (s)", [_series(args, "TimeToReady", "p50"), _series(args, "TimeToReady", "p95"),
                                      _series(args, "LaunchSeconds", "p95")], args, x=0, y=6, unit_label="s"),
        # Every replica counts the provider's sessions, so the most any replica saw is the count.
        _widget("Active sessions", [_series(args, "ActiveSessions", "Maximum")], args, x=12, y=6),
        _widget("Failures by cause", [[{"expression": failures_by_reason, "label": "", "id": "reasons"}]],
                args, x=0, y=12),
        # Each replica reports the idle bots on its own channels: the reserve is their sum.
        _widget("Reserve size and cost", [
            _series(args, "ReserveIdleBots", "Sum"), _series(args, "ReserveWarmingBots", "Sum"),
            _series(args, "ReserveIdleMachineSeconds", "Sum", yAxis="right"),
            _series(args, "ReserveFailedBots", "Sum")], args, x=12, y=12),
        _widget("Phone calls (bot spoke) and first audio (s)", [
            _series(args, "PhoneFirstAudio", "SampleCount", label="calls"),
            _series(args, "PhoneFirstAudio", "p95", yAxis="right", label="first audio p95")], args, x=0, y=18),
        _widget("Store up (1) across replicas", [_series(args, "StoreUp", "Minimum")], args, x=12, y=18),
        # Ended sessions, at the price table's price (docs/operations.md, "What a call cost"): every replica's sum.
        _widget("Sessions' cost ($) and machine-seconds", [
            _series(args, "SessionCostDollars", "Sum"),
            _series(args, "SessionMachineSeconds", "Sum", yAxis="right"),
            _series(args, "SessionIdleMachineSeconds", "Sum", yAxis="right")], args, x=0, y=24),
    ]
    return {"widgets": widgets}


def _alarm(args: ObservabilityArgs, name: str, description: str, **spec: Any) -> dict[str, Any]:
    actions = [args.alarm_topic_arn] if args.alarm_topic_arn else []
    return {"name": f"{args.prefix}-{name}", "alarm_description": description, "alarm_actions": actions,
            "ok_actions": actions, **spec}


def alarm_specs(args: ObservabilityArgs) -> Mapping[str, dict[str, Any]]:
    """Each alarm's MetricAlarm inputs, by a short key; conditional ones only where they can fire."""
    def stat(query_id: str, name: str) -> dict[str, Any]:
        return {"id": query_id, "return_data": False, "metric": {
            "namespace": args.namespace, "metric_name": metric(name), "dimensions": _dimensions(),
            "period": ALARM_PERIOD, "stat": "Sum"}}

    specs: dict[str, dict[str, Any]] = {
        "start-failures": _alarm(
            args, "start-failure-rate",
            f"More than {FAILURE_RATE_PERCENT:g}% of POST /start calls started nothing, twice in 5 minutes. "
            "Dashboard: failures by cause; then the dispatcher's log group.",
            comparison_operator="GreaterThanThreshold", threshold=FAILURE_RATE_PERCENT,
            evaluation_periods=2, datapoints_to_alarm=2,
            # No starts and no failures: no rate, and nothing wrong.
            treat_missing_data="notBreaching",
            metric_queries=[stat("failures", "StartFailures"), stat("starts", "Starts"), {
                "id": "rate", "return_data": True, "label": "start failure rate (%)",
                "expression": "100 * FILL(failures, 0) / (FILL(starts, 0) + FILL(failures, 0))"}]),
        "ready-p95": _alarm(
            args, "time-to-ready-p95",
            "Callers waited long for their bot: p95 of POST /start to the bot's ready. "
            "Dashboard: warm share and reserve size (cold starts), launch p95 (the provider).",
            namespace=args.namespace, metric_name=metric("TimeToReady"), dimensions=_dimensions(),
            extended_statistic="p95", period=ALARM_PERIOD, evaluation_periods=2, datapoints_to_alarm=2,
            comparison_operator="GreaterThanThreshold",
            threshold=READY_P95_SECONDS_WARM if args.reserve else READY_P95_SECONDS_COLD,
            # No starts: nobody waited. Few starts: the p95 of three samples is still the slowest caller.
            treat_missing_data="notBreaching", evaluate_low_sample_count_percentiles="evaluate"),
    }
    if args.reserve:
        specs["reserve-empty"] = _alarm(
            args, "reserve-empty",
            "Starts found no idle bot (cold misses) in 3 of 5 minutes: the reserve is too small or its "
            "bots fail. Dashboard: reserve size and failed bots; /healthz shows the reserve's backoff.",
            namespace=args.namespace, metric_name=metric("ColdStarts"), dimensions=_dimensions(),
            statistic="Sum", period=PERIOD, evaluation_periods=5, datapoints_to_alarm=3,
            comparison_operator="GreaterThanOrEqualToThreshold", threshold=1, treat_missing_data="notBreaching")
    if args.store:
        specs["store-down"] = _alarm(
            args, "store-down",
            "A replica found the coordination store unreachable for 2 minutes: starts are answered as "
            "one process would (docs/replicas.md). /healthz names the store's error.",
            namespace=args.namespace, metric_name=metric("StoreUp"), dimensions=_dimensions(),
            statistic="Minimum", period=PERIOD, evaluation_periods=2, datapoints_to_alarm=2,
            comparison_operator="LessThanThreshold", threshold=1,
            # No lines at all means no dispatcher (drained, or down: the balancer's health shows that),
            # which says nothing of the store: the alarm goes to INSUFFICIENT_DATA, not ALARM.
            treat_missing_data="missing")
    if args.store and args.store_cache is not None:
        specs["store-full"] = _alarm(
            args, "store-full",
            f"The coordination store holds {STORE_FULL_PERCENT:g}% of its data maximum ({args.store_data_gb:,} GB, "
            "storeDataGb). At the maximum ElastiCache evicts keys that have a TTL, and every record the dispatcher "
            "keeps has one (leases, cell records, once-marks: the records that stop a double launch). Raise "
            "storeDataGb (a change with no interruption); the plan's store ceiling says what a day needs "
            "(docs/operations.md, \"The store's ceiling\").",
            namespace=STORE_NAMESPACE, metric_name="BytesUsedForCache",
            dimensions={STORE_DIMENSION: args.store_cache},
            # GB as store_ceiling counts it (10^9 bytes): were AWS's GB binary, it fires a little early, never late.
            statistic="Maximum", period=ALARM_PERIOD, evaluation_periods=1, datapoints_to_alarm=1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=args.store_data_gb * GB * STORE_FULL_PERCENT / 100,
            # ElastiCache reports the cache whatever the dispatcher does: no data says nothing of its size.
            treat_missing_data="missing")
    if args.sip_edge:
        for edge_alarm in SIP_EDGE_ALARMS:
            specs[edge_alarm.key] = _alarm(
                args, edge_alarm.key, edge_alarm.description,
                namespace=args.namespace, metric_name=metric(edge_alarm.metric), dimensions=_dimensions(),
                # The most any replica reported: each asks every edge itself.
                statistic="Maximum", period=PERIOD, evaluation_periods=edge_alarm.minutes,
                datapoints_to_alarm=edge_alarm.minutes,
                comparison_operator="GreaterThanThreshold", threshold=0,
                # As the store's: no lines is no dispatcher, which says nothing of the edge. `missing`
                # moves the alarm to INSUFFICIENT_DATA, never to OK (no OK action tells the on-call the edge
                # is back); `breaching` would page an edge fault for a dispatcher's.
                treat_missing_data="missing")
    if args.dispatcher_targets is not None:
        specs[DISPATCHER_DOWN] = _alarm(
            args, DISPATCHER_DOWN,
            dispatcher_down_description("the load balancer counted no healthy task", DOWN_MINUTES),
            namespace=BALANCER_NAMESPACE, metric_name="HealthyHostCount", dimensions=dict(args.dispatcher_targets),
            # The fewest healthy tasks in each minute: none in every minute of 3 is no dispatcher. One replica
            # of several down is not a page: the others answer (deployments keep 100% healthy while replacing).
            statistic="Minimum", period=PERIOD, evaluation_periods=DOWN_MINUTES, datapoints_to_alarm=DOWN_MINUTES,
            comparison_operator="LessThanThreshold", threshold=1,
            # The balancer reports this metric while health checks are on, traffic or not; none at all means
            # nothing reports it, which is no healthy dispatcher either.
            treat_missing_data="breaching",
            # Drained: silent while the tasks drain, and until an `up` without `drain` has a task steady again.
            **({"actions_enabled": False} if args.drained else {}))
    return specs

