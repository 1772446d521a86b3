"""What an operator looks at on GCP: the dispatcher's metrics in Cloud Monitoring, one dashboard,
up to seven alert policies (the AWS stack's alarms, stacks/aws/observability.py).

The metrics come from the dispatcher's own log lines (dispatcher/observability/metric_lines.py, `METRIC_LINES=json`):
Cloud Run writes a JSON stdout line to Cloud Logging as `jsonPayload`, and one log-based
distribution metric per line member extracts its value (`value_extractor`,
https://cloud.google.com/logging/docs/logs-based-metrics/distribution-metrics). Counters and gauges
are read through PromQL, which queries a distribution like a Prometheus histogram (`_sum`,
`_count`, `_bucket`: https://cloud.google.com/monitoring/promql/promql-mapping); so a counter's
increase is its `_sum`, and time to ready has the dispatcher's own buckets, filled from the lines'
per-observation samples. No collector, sidecar or scrape target. Every metric name comes from that
module, never typed twice.

The alert policies wait for `alertPolicies: true`. Cloud Monitoring refuses a policy on a log-based
metric created less than about 10 minutes earlier ("Error 404: Cannot find metric(s) that match type
= logging.googleapis.com/user/… If a metric was created recently, it could take up to 10 minutes to
become available", hashicorp/terraform-provider-google#11102, open and reproduced in 2026), and Pulumi's
`depends_on` orders the creates but cannot wait those minutes. So a project's first `up` creates the
metrics and the dashboard (a dashboard names metrics without that check), and the second `up`, with
the setting on, the policies (docs/pulumi.md, "First deploy on GCP"). A create-only sleep between them
would need a new provider plugin (pulumiverse-time, last released 2024-12) for a wait that Google
gives as "up to", not at most.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp.logging as gcp_logging
import pulumi_gcp.monitoring as gcp_monitoring
import pulumi_gcp.projects as gcp_projects

from dispatcher.observability.metric_catalogue import (
    FIRST_AUDIO_BUCKETS,
    LAUNCH_BUCKETS,
    METRICS,
    READY_BUCKETS,
    REASON,
    SAMPLE,
    STORE_UP,
    LineMetric,
)
from stacks.config.alarms import FAILURE_RATE_PERCENT, READY_P95_SECONDS_COLD, READY_P95_SECONDS_WARM
from stacks.gcp import log_metrics_last_up
from stacks.shared.dispatcher_alarm import DISPATCHER_DOWN, LINES_MISSING_MINUTES, dispatcher_down_description
from stacks.shared.sip_edge_alarms import SIP_EDGE_ALARMS

# The histograms' buckets are the dispatcher's own, so a p95 here and on /metrics agree.
BUCKETS: Mapping[str, Sequence[float]] = {
    "TimeToReady": READY_BUCKETS, "LaunchSeconds": LAUNCH_BUCKETS, "PhoneFirstAudio": FIRST_AUDIO_BUCKETS}
RESOURCE = 'monitored_resource="cloud_run_revision"'  # log-based metrics may map to several resource types
FAILURES_BY_REASON = "StartFailuresByReason"
# Every line the dispatcher writes, counted (a line each 60 s per instance, whatever it holds): the
# dispatcher-down policy fires when none arrives.
LINES = "MetricLines"
NO_POLICIES = ("no alert policies: set `pulumi config set voicefleet:alertPolicies true` and `up` again at "
               "least 10 minutes after this stack's log-based metrics were created (docs/pulumi.md, "
               "First deploy on GCP)")
NO_DISPATCHER_DOWN_YET = ("no dispatcher-down policy yet: its log-based metric {metric} is new in this `up`, and "
                          "Cloud Monitoring refuses a policy on a log-based metric younger than about 10 minutes; "
                          "the next `up`, 10 minutes or more after this one, makes it (docs/operations.md, The alarms)")
NO_DISPATCHER_DOWN = ("no dispatcher-down policy: with dispatcherMinInstances 0 Cloud Run may keep no instance, "
                      "and an idle dispatcher writes no line, so nothing tells a dispatcher down from one idle; set "
                      "`pulumi config set voicefleet:dispatcherMinInstances 1` for one (docs/operations.md, "
                      "The alarms)")


def metric_environment(namespace: str) -> dict[str, str]:
    """The dispatcher's part: JSON lines in this stack's namespace (stacks/shared/contract.py METRIC_LINES_ENV)."""
    return {"METRIC_LINES": "json", "METRIC_NAMESPACE": namespace}


@dataclass(frozen=True)
class ObservabilityArgs:
    prefix: str
    project: str
    namespace: str  # voicefleet/<stack>: the lines' metricNamespace member
    service_name: str  # the Cloud Run service whose logs carry the lines
    reserve: bool
    store: bool
    notification_channels: tuple[str, ...] = ()
    alert_policies: bool = False  # off until the log-based metrics are older than Monitoring's ~10 min
    depends_on: tuple[pulumi.Resource, ...] = ()  # the Logging API
    sip_edge: bool = False  # the stack runs a SIP edge (`sipEdge`), which the dispatcher asks
    # An instance is always meant to run (dispatcherMinInstances ≥ 1, not drained), its CPU always on, so
    # it writes a line every minute: lines missing then is a dispatcher down (the dispatcher-down policy).
    # Scaled to zero, no line is the normal idle state, and no policy can tell it from a dispatcher down.
    always_running: bool = False
    drained: bool = False  # before a destroy: no instance, and no policy to miss


def log_metric_id(prefix: str, name: str) -> str:
    """`TimeToReady` → `<prefix>-time-to-ready`: the log-based metric's name (logging.googleapis.com/user/…)."""
    return f"{prefix}-{re.sub(r'(?<!^)(?=[A-Z])', '-', name).lower()}"


def promql_name(prefix: str, name: str) -> str:
    """The PromQL name of a log-based metric: first `/` to `:`, every other special character to `_`."""
    return "logging_googleapis_com:user_" + re.sub(r"[^A-Za-z0-9_]", "_", log_metric_id(prefix, name))


class Observability(pulumi.ComponentResource):
    dashboard_url: pulumi.Output[str]
    alert_policy_names: pulumi.Output[list[str]]
    log_metric_names: pulumi.Output[list[str]]

    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:gcp:Observability", name, None, opts)
        self._args = args
        monitoring = gcp_projects.Service(f"{name}-monitoring", project=args.project,
                                          service="monitoring.googleapis.com", disable_on_destroy=False,
                                          opts=pulumi.ResourceOptions(parent=self))
        after_logging = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))
        metrics = [gcp_logging.Metric(f"{name}-{key}", **spec, opts=after_logging)
                   for key, spec in log_metric_specs(args).items()]
        # Dashboards and policies name the log-based metrics: they must exist first.
        after_metrics = pulumi.ResourceOptions(parent=self, depends_on=[monitoring, *metrics])
        dashboard = gcp_monitoring.Dashboard(name, project=args.project,
                                             dashboard_json=json.dumps(dashboard_body(args)), opts=after_metrics)
        specs = dict(alert_policy_specs(args)) if args.alert_policies else {}
        down = specs.pop(DISPATCHER_DOWN, None)
        names: list[pulumi.Input[str | None]] = [
            gcp_monitoring.AlertPolicy(f"{name}-{key}", **spec, opts=after_metrics).display_name
            for key, spec in specs.items()]
        if down is not None:
            # Declared from the last `up`'s outputs, known at a preview (stacks/gcp/log_metrics_last_up.py).
            names.append(log_metrics_last_up.read(name, self).apply(
                lambda last: self._dispatcher_down(f"{name}-{DISPATCHER_DOWN}", down, last, after_metrics)))
        if not args.alert_policies:
            pulumi.log.warn(NO_POLICIES, resource=self)
        elif not args.always_running and not args.drained:
            pulumi.log.warn(NO_DISPATCHER_DOWN, resource=self)
        self.dashboard_url = dashboard.id.apply(
            lambda path: f"https://console.cloud.google.com/monitoring/dashboards/builder/{path.rsplit('/', 1)[-1]}"
                         f"?project={args.project}")
        self.alert_policy_names = pulumi.Output.all(*names).apply(lambda found: [n for n in found if n is not None])
        # Read back by the next `up`: a policy on a log-based metric waits until it is older than this `up`.
        self.log_metric_names = pulumi.Output.all(*[m.name for m in metrics]).apply(sorted)
        self.register_outputs({"dashboard_url": self.dashboard_url, "alert_policy_names": self.alert_policy_names,
                               "log_metric_names": self.log_metric_names})

    def _dispatcher_down(self, name: str, spec: dict[str, Any], last: log_metrics_last_up.LastUp,
                         opts: pulumi.ResourceOptions) -> pulumi.Output[str] | None:
        """The dispatcher-down policy, once its log-based metric is older than this `up`; None before."""
        metric = log_metric_id(self._args.prefix, LINES)
        if not last.may_read(metric, spec["display_name"]):
            pulumi.log.warn(NO_DISPATCHER_DOWN_YET.format(metric=metric), resource=self)
            return None
        return gcp_monitoring.AlertPolicy(name, **spec, opts=opts).display_name


def _filter(args: ObservabilityArgs, *clauses: str) -> str:
    # The dispatcher's stdout as Cloud Run writes it (its metric lines; its own logs go to stderr):
    # a bot VM's lines (resource gce_instance) never count. An identity holding logging.logWriter
    # can still write an entry claiming this log and resource (docs/security.md, "Metrics").
    return " AND ".join((f'logName="projects/{args.project}/logs/run.googleapis.com%2Fstdout"',
                         'resource.type="cloud_run_revision"',
                         f'resource.labels.service_name="{args.service_name}"',
                         f'jsonPayload.metricNamespace="{args.namespace}"', *clauses))


def _distribution(args: ObservabilityArgs, name: str, unit: str, description: str, filter_: str, extractor: str,
                  bounds: Sequence[float], labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "name": log_metric_id(args.prefix, name), "project": args.project, "description": description,
        "filter": filter_, "value_extractor": extractor,
        "metric_descriptor": {"metric_kind": "DELTA", "value_type": "DISTRIBUTION", "unit": unit,
                              "labels": [{"key": key, "value_type": "STRING"} for key in (labels or {})]},
        **({"label_extractors": dict(labels)} if labels else {}),
        "bucket_options": {"explicit_buckets": {"bounds": list(bounds)}},
    }


def log_metric_specs(args: ObservabilityArgs) -> dict[str, dict[str, Any]]:
    """One log-based metric per member the dispatcher writes (dispatcher/observability/metric_lines.py METRICS), by
    the metric's name in kebab case."""
    specs: list[dict[str, Any]] = []
    for metric in (*METRICS, STORE_UP):
        unit = "s" if metric.unit == "Seconds" else "1"
        description = f"voicefleet dispatcher {metric.name} ({metric.kind}), from its metric lines"
        if metric.kind == "histogram":
            specs.append(_distribution(args, metric.name, unit, description,
                                       _filter(args, f'jsonPayload.{SAMPLE}="{metric.name}"'),
                                       "EXTRACT(jsonPayload.value)", BUCKETS[metric.name]))
        else:
            # Totals only: the per-reason lines carry StartFailures too, counted below.
            only_totals = (f"NOT jsonPayload.{REASON}:*",) if metric.name == "StartFailures" else ()
            specs.append(_distribution(args, metric.name, unit, description,
                                       _filter(args, f"jsonPayload.{metric.name}:*", *only_totals),
                                       f"EXTRACT(jsonPayload.{metric.name})", _value_bounds(metric)))
    specs.append({
        "name": log_metric_id(args.prefix, LINES), "project": args.project,
        "description": "voicefleet dispatcher metric lines written (any), for the dispatcher-down policy",
        "filter": _filter(args), "metric_descriptor": {"metric_kind": "DELTA", "value_type": "INT64", "unit": "1"}})
    specs.append(_distribution(
        args, FAILURES_BY_REASON, "1", "voicefleet POST /start failures by reason, from its metric lines",
        _filter(args, f"jsonPayload.{REASON}:*"), "EXTRACT(jsonPayload.StartFailures)", (1, 10, 100, 1000),
        labels={"reason": f"EXTRACT(jsonPayload.{REASON})"}))
    return {spec["name"].removeprefix(f"{args.prefix}-"): spec for spec in specs}


def _value_bounds(metric: LineMetric) -> Sequence[float]:
    # Counters and gauges are read through `_sum` and `_count`: their buckets only need to exist.
    return (0.5, 1, 10, 100, 1000) if metric.name != STORE_UP.name else (0.5,)


def _increase(args: ObservabilityArgs, name: str, window: str = "1m") -> str:
    return f"sum(increase({promql_name(args.prefix, name)}_sum{{{RESOURCE}}}[{window}]))"


def _quantile(args: ObservabilityArgs, name: str, q: float, window: str = "5m") -> str:
    return (f"histogram_quantile({q}, sum by (le) "
            f"(rate({promql_name(args.prefix, name)}_bucket{{{RESOURCE}}}[{window}])))")


def _mean(args: ObservabilityArgs, name: str, window: str = "1m") -> str:
    metric = promql_name(args.prefix, name)
    return f"sum(rate({metric}_sum{{{RESOURCE}}}[{window}])) / sum(rate({metric}_count{{{RESOURCE}}}[{window}]))"


def _tile(title: str, queries: Mapping[str, str], index: int) -> dict[str, Any]:
    return {"xPos": (index % 2) * 24, "yPos": (index // 2) * 16, "width": 24, "height": 16, "widget": {
        "title": title, "xyChart": {"dataSets": [
            {"timeSeriesQuery": {"prometheusQuery": query}, "plotType": "LINE", "legendTemplate": label}
            for label, query in queries.items()]}}}


def dashboard_body(args: ObservabilityArgs) -> dict[str, Any]:
    warm, cold = _increase(args, "WarmStarts", "5m"), _increase(args, "ColdStarts", "5m")
    failures_by_reason = promql_name(args.prefix, FAILURES_BY_REASON)
    panels: list[tuple[str, dict[str, str]]] = [
        ("Starts and failures (per minute)", {"starts": _increase(args, "Starts"),
                                              "failures": _increase(args, "StartFailures")}),
        ("Warm share (%)", {"warm share": f"100 * {warm} / ({warm} + {cold})"}),
        ("Time to ready (s)", {"p50": _quantile(args, "TimeToReady", 0.5), "p95": _quantile(args, "TimeToReady", 0.95),
                               "launch p95": _quantile(args, "LaunchSeconds", 0.95)}),
        # Every instance counts the provider's sessions: their mean is the count.
        ("Active sessions", {"sessions": _mean(args, "ActiveSessions")}),
        ("Failures by cause (per minute)", {
            "{{reason}}": f"sum by (reason) (increase({failures_by_reason}_sum{{{RESOURCE}}}[1m]))"}),
        # Each instance reports the idle bots on its own channels: the reserve is their sum.
        ("Reserve size and cost", {"idle": _increase(args, "ReserveIdleBots"),
                                   "warming": _increase(args, "ReserveWarmingBots"),
                                   "idle machine-seconds": _increase(args, "ReserveIdleMachineSeconds"),
                                   "failed bots": _increase(args, "ReserveFailedBots")}),
        ("Phone calls (bot spoke) and first audio p95 (s)", {
            "calls": f"sum(increase({promql_name(args.prefix, 'PhoneFirstAudio')}_count{{{RESOURCE}}}[1m]))",
            "first audio p95": _quantile(args, "PhoneFirstAudio", 0.95)}),
        ("Store up (1)", {"store up": _mean(args, STORE_UP.name)}),
        ("Sessions' cost ($ per minute) and machine-seconds", {
            "dollars": _increase(args, "SessionCostDollars"),
            "session machine-seconds": _increase(args, "SessionMachineSeconds"),
            "idle before claim": _increase(args, "SessionIdleMachineSeconds")}),
    ]
    tiles = [_tile(title, queries, i) for i, (title, queries) in enumerate(panels)]
    body: dict[str, Any] = _without_defaults({"displayName": f"{args.prefix} voicefleet",
                                              "mosaicLayout": {"columns": 48, "tiles": tiles}})
    return body


def _without_defaults(value: Any) -> Any:
    """The body as the Monitoring API returns it: proto3 JSON leaves out members equal to their
    default (0, "", false, [], {}), so a tile at xPos 0 reads back without xPos and every preview
    would show a diff. The provider's normaliser drops members the API adds, not the ones it drops
    (hashicorp/terraform-provider-google#16173, open; its zero-position fix, magic-modules#18515,
    closed unmerged)."""
    if isinstance(value, Mapping):
        kept = {key: _without_defaults(member) for key, member in value.items()}
        return {key: member for key, member in kept.items() if member not in (0, "", [], {})}
    if isinstance(value, list):
        return [_without_defaults(item) for item in value]
    return value


def _policy(args: ObservabilityArgs, name: str, documentation: str, query: str, duration: str) -> dict[str, Any]:
    return _policy_on(args, name, documentation, {"condition_prometheus_query_language": {
        "query": query, "duration": duration, "evaluation_interval": "60s"}})


def _policy_on(args: ObservabilityArgs, name: str, documentation: str, condition: dict[str, Any]) -> dict[str, Any]:
    return {
        "project": args.project, "display_name": f"{args.prefix}-{name}", "combiner": "OR",
        "notification_channels": list(args.notification_channels),
        "documentation": {"content": documentation, "mime_type": "text/markdown"},
        "conditions": [{"display_name": name, **condition}],
    }


def dispatcher_down_policy(args: ObservabilityArgs) -> dict[str, Any]:
    """No metric line from any instance for LINES_MISSING_MINUTES: a metric-absence condition
    (`condition_absent`), since a PromQL query without data returns no series and fires nothing. Every
    instance's and revision's series are summed into one first (`cross_series_reducer`), so a release,
    whose old revision's series stops, is not an absence while the new revision writes."""
    metric = f"logging.googleapis.com/user/{log_metric_id(args.prefix, LINES)}"
    return _policy_on(args, DISPATCHER_DOWN, dispatcher_down_description(
        "Cloud Logging received no metric line from its Cloud Run service", LINES_MISSING_MINUTES),
        {"condition_absent": {
            "filter": f'metric.type="{metric}" AND resource.type="cloud_run_revision"',
            "duration": f"{LINES_MISSING_MINUTES * 60}s",
            "aggregations": [{"alignment_period": "60s", "per_series_aligner": "ALIGN_SUM",
                              "cross_series_reducer": "REDUCE_SUM"}],
            "trigger": {"count": 1}}})


def alert_policy_specs(args: ObservabilityArgs) -> Mapping[str, dict[str, Any]]:
    starts, failures = _increase(args, "Starts", "5m"), _increase(args, "StartFailures", "5m")
    ready = READY_P95_SECONDS_WARM if args.reserve else READY_P95_SECONDS_COLD
    specs = {
        # A PromQL alert fires while its query returns a series: no starts, no failures, no series.
        "start-failures": _policy(
            args, "start-failure-rate",
            f"More than {FAILURE_RATE_PERCENT:g}% of POST /start calls started nothing for 10 minutes. "
            "Dashboard: failures by cause; then the dispatcher's Cloud Run logs.",
            f"100 * {failures} / ({starts} + {failures}) > {FAILURE_RATE_PERCENT:g}", "600s"),
        "ready-p95": _policy(
            args, "time-to-ready-p95",
            "Callers waited long for their bot: p95 of POST /start to the bot's ready. Dashboard: warm "
            "share and reserve size (cold starts), launch p95 (Compute Engine).",
            f"{_quantile(args, 'TimeToReady', 0.95)} > {ready:g}", "600s"),
    }
    if args.reserve:
        specs["reserve-empty"] = _policy(
            args, "reserve-empty",
            "Starts found no idle bot (cold misses) for 3 minutes: the reserve is too small or its bots "
            "fail. Dashboard: reserve size and failed bots; /healthz shows the reserve's backoff.",
            f"{_increase(args, 'ColdStarts')} >= 1", "180s")
    if args.store:
        specs["store-down"] = _policy(
            args, "store-down",
            "An instance found Memorystore unreachable for 2 minutes: starts are answered as one process "
            "would (docs/replicas.md). /healthz names the store's error.",
            # The mean of what the instances reported: below 1 when one of them lost the store.
            f"{_mean(args, STORE_UP.name)} < 1", "120s")
    if args.sip_edge:
        for edge_alarm in SIP_EDGE_ALARMS:
            # The mean of what the instances reported: above 0 once one of them counted an edge down (or a
            # trunk refused). No lines (no dispatcher) is no series: nothing fires, and an open incident is
            # not closed by it before the policy's auto-close duration; the dispatcher's own health is Cloud
            # Run's metrics'.
            specs[edge_alarm.key] = _policy(args, edge_alarm.key, edge_alarm.description,
                                            f"{_mean(args, edge_alarm.metric)} > 0", f"{edge_alarm.minutes * 60}s")
    if args.always_running:
        specs[DISPATCHER_DOWN] = dispatcher_down_policy(args)
    return specs
