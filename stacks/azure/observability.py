"""What an operator looks at on Azure: one Log Analytics workspace, a workbook, up to seven log alerts.

The dispatcher writes its metrics as JSON log lines (`METRIC_LINES=json`,
dispatcher/observability/metric_lines.py); the Container Apps environment sends its console logs
to the workspace through a diagnostic setting (stacks/azure/dispatcher.py), into the
resource-specific table `ContainerAppConsoleLogs` whose `Log` column holds the line. The workbook
and the alerts read the lines with KQL (`parse_json(Log)`): counters summed per bin, time to ready
from the lines' per-observation samples. The thresholds are the AWS stack's
(stacks/aws/observability.py says why). Each alert notifies `alarmActionGroupId` when set.
The dispatcher-down alert counts the lines themselves: none in 5 minutes from a dispatcher always meant to
run is a dispatcher down, which every other alert (reading values on the lines) cannot see.
No query here has run against a real workspace (docs/pulumi.md, "What is not verified on Azure").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import pulumi
import pulumi_azure_native.applicationinsights as azure_applicationinsights
import pulumi_azure_native.monitor as azure_monitor
import pulumi_azure_native.operationalinsights as azure_operationalinsights

from stacks.azure import naming
from stacks.config.alarms import FAILURE_RATE_PERCENT, READY_P95_SECONDS_COLD, READY_P95_SECONDS_WARM
from stacks.shared.dispatcher_alarm import DISPATCHER_DOWN, LINES_MISSING_MINUTES, dispatcher_down_description
from stacks.shared.sip_edge_alarms import SIP_EDGE_ALARMS

TABLE = "ContainerAppConsoleLogs"
# An edge alert fired stays fired this long after its query last met the condition: a dispatcher gone
# quiet leaves the query without rows (which is "healthy" to a log alert), and by then the
# dispatcher-down alert (5 minutes without a line) has fired, so the edge's is never resolved unexplained.
EDGE_TIME_TO_RESOLVE = "PT10M"


def metric_environment(namespace: str) -> dict[str, str]:
    """The dispatcher's part: JSON lines in this stack's namespace (stacks/shared/contract.py METRIC_LINES_ENV)."""
    return {"METRIC_LINES": "json", "METRIC_NAMESPACE": namespace}


@dataclass(frozen=True)
class ObservabilityArgs:
    prefix: str
    resource_group: pulumi.Input[str]
    location: str
    namespace: str
    retention_days: int
    app_name: str  # the Container App whose console logs carry the lines
    reserve: bool
    store: bool
    tags: dict[str, str]
    action_group_id: str | None = None
    sip_edge: bool = False  # the stack runs a SIP edge (`sipEdge`), which the dispatcher asks
    # A replica is always meant to run (dispatcherMinReplicas ≥ 1, not drained), so a line arrives every
    # minute: none is a dispatcher down. Scaled to zero, no line is also the idle state.
    always_running: bool = False


def lines(args: ObservabilityArgs) -> str:
    """The KQL that every query starts from: this stack's metric lines, parsed."""
    return (f"{TABLE} | where ContainerAppName == '{args.app_name}' | extend m = parse_json(Log) "
            f"| where tostring(m.metricNamespace) == '{args.namespace}'")


def queries(args: ObservabilityArgs) -> dict[str, str]:
    """Each alert's query, by key: one row per 5-minute bin, the measured column `value`."""
    base = lines(args)
    found = {
        "start-failure-rate": (
            f"{base} | where isempty(tostring(m.Reason)) | summarize failures = sum(todouble(m.StartFailures)), "
            "starts = sum(todouble(m.Starts)) by bin(TimeGenerated, 5m) "
            "| extend value = iff(starts + failures > 0, 100.0 * failures / (starts + failures), 0.0)"),
        "time-to-ready-p95": (
            f"{base} | where tostring(m.histogram) == 'TimeToReady' "
            "| summarize value = percentile(todouble(m.value), 95) by bin(TimeGenerated, 5m)"),
    }
    if args.reserve:
        found["reserve-empty"] = (f"{base} | summarize value = sum(todouble(m.ColdStarts)) by bin(TimeGenerated, 1m)")
    if args.store:
        found["store-down"] = (f"{base} | where isnotempty(tostring(m.StoreUp)) "
                               "| summarize value = min(todouble(m.StoreUp)) by bin(TimeGenerated, 1m)")
    if args.sip_edge:
        # The most any replica reported (each asks every edge itself), as the store's: lines without the
        # member (no edge answered with its trunks) are no row, not a 0.
        for edge_alarm in SIP_EDGE_ALARMS:
            found[edge_alarm.key] = (f"{base} | where isnotempty(tostring(m.{edge_alarm.metric})) "
                                     f"| summarize value = max(todouble(m.{edge_alarm.metric})) "
                                     "by bin(TimeGenerated, 1m)")
    return found


def alert_specs(args: ObservabilityArgs) -> Mapping[str, dict[str, Any]]:
    """Each alert's ScheduledQueryRule condition: operator, threshold, aggregation, periods."""
    ready = READY_P95_SECONDS_WARM if args.reserve else READY_P95_SECONDS_COLD
    specs = {
        "start-failure-rate": ("GreaterThan", FAILURE_RATE_PERCENT, "Maximum", 2, 2,
                               f"More than {FAILURE_RATE_PERCENT:g}% of POST /start calls started nothing."),
        "time-to-ready-p95": ("GreaterThan", ready, "Maximum", 2, 2,
                              "Callers waited long for their bot: p95 of POST /start to the bot's ready."),
        "reserve-empty": ("GreaterThanOrEqual", 1, "Total", 5, 3,
                          "Starts found no idle bot (cold misses) in 3 of 5 minutes."),
        "store-down": ("LessThan", 1, "Minimum", 2, 2,
                       "A replica found the coordination store unreachable for 2 minutes (docs/replicas.md)."),
        **{edge_alarm.key: ("GreaterThan", 0, "Maximum", edge_alarm.minutes, edge_alarm.minutes,
                            edge_alarm.description) for edge_alarm in SIP_EDGE_ALARMS},
    }
    slow = ("start-failure-rate", "time-to-ready-p95")  # 5-minute bins
    found = {key: {"operator": op, "threshold": float(threshold), "time_aggregation": aggregation,
                   "evaluations": evaluations, "failing": failing, "description": description, "query": query,
                   "measure": "value", "frequency": "PT5M" if key in slow else "PT1M",
                   "window": "PT5M" if key in slow else "PT1M",
                   "resolve": EDGE_TIME_TO_RESOLVE if key in {a.key for a in SIP_EDGE_ALARMS} else None}
             for key, query in queries(args).items()
             for op, threshold, aggregation, evaluations, failing, description in [specs[key]]}
    if args.always_running:
        # The rows themselves counted (no measure column): fewer than 1 line in the last 5 minutes, asked
        # every minute. A log alert has no missing-data setting, so "no rows" is the condition itself.
        found[DISPATCHER_DOWN] = {
            "operator": "LessThan", "threshold": 1.0, "time_aggregation": "Count", "evaluations": 1, "failing": 1,
            "description": dispatcher_down_description("Log Analytics received no metric line from its Container "
                                                       "App", LINES_MISSING_MINUTES),
            "query": lines(args), "measure": None, "frequency": "PT1M", "window": f"PT{LINES_MISSING_MINUTES}M",
            "resolve": None}
    return found


def workbook(args: ObservabilityArgs) -> str:
    """The workbook's serialized data: one KQL chart per question an operator asks first."""
    base = lines(args)
    charts = {
        "Starts, warm and cold, failures": (
            f"{base} | where isempty(tostring(m.Reason)) | summarize starts = sum(todouble(m.Starts)), "
            "warm = sum(todouble(m.WarmStarts)), cold = sum(todouble(m.ColdStarts)), "
            "failures = sum(todouble(m.StartFailures)) by bin(TimeGenerated, 5m)"),
        "Failures by cause": (f"{base} | where isnotempty(tostring(m.Reason)) | summarize "
                              "failures = sum(todouble(m.StartFailures)) "
                              "by tostring(m.Reason), bin(TimeGenerated, 5m)"),
        "Time to ready p50 / p95": (f"{base} | where tostring(m.histogram) == 'TimeToReady' | summarize "
                                    "p50 = percentile(todouble(m.value), 50), p95 = percentile(todouble(m.value), 95) "
                                    "by bin(TimeGenerated, 5m)"),
        "Active sessions and reserve": (f"{base} | summarize sessions = max(todouble(m.ActiveSessions)), "
                                        "idle = max(todouble(m.ReserveIdleBots)), "
                                        "warming = max(todouble(m.ReserveWarmingBots)) "
                                        "by bin(TimeGenerated, 1m)"),
        "Sessions' cost ($) and machine-seconds": (
            f"{base} | where isempty(tostring(m.Reason)) | summarize dollars = sum(todouble(m.SessionCostDollars)), "
            "session = sum(todouble(m.SessionMachineSeconds)), idle = sum(todouble(m.SessionIdleMachineSeconds)) "
            "by bin(TimeGenerated, 5m)"),
    }
    items = [{"type": 3, "name": title, "content": {"version": "KqlItem/1.0", "query": query, "title": title,
                                                    "queryType": 0, "visualization": "timechart",
                                                    "timeContext": {"durationMs": 86400000}}}
             for title, query in charts.items()]
    return json.dumps({"version": "Notebook/1.0", "items": items, "isLocked": False})


class Observability(pulumi.ComponentResource):
    workspace_id: pulumi.Output[str]
    alert_names: pulumi.Output[list[str]]

    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("voicefleet:azure:Observability", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        common: dict[str, Any] = {"resource_group_name": args.resource_group, "location": args.location,
                                  "tags": args.tags}
        workspace = azure_operationalinsights.Workspace(
            name, workspace_name=f"{args.prefix}-logs", sku={"name": "PerGB2018"},
            retention_in_days=args.retention_days, **common, opts=child)
        self.workspace_id = workspace.id
        azure_applicationinsights.Workbook(
            name, resource_name_=naming.guid(args.prefix, "workbook"), kind="shared",
            display_name=f"{args.prefix} dispatcher", category="workbook", source_id=workspace.id,
            serialized_data=workbook(args), **common, opts=child)
        actions = (cast(azure_monitor.ActionsArgsDict, {"action_groups": [args.action_group_id]})
                   if args.action_group_id else None)
        rules = [
            azure_monitor.ScheduledQueryRule(
                f"{name}-{key}",
                rule_name=f"{args.prefix}-{key}",
                description=spec["description"],
                severity=2,
                enabled=True,
                scopes=[workspace.id],
                evaluation_frequency=spec["frequency"],
                window_size=spec["window"],
                criteria=cast(azure_monitor.ScheduledQueryRuleCriteriaArgsDict, {"all_of": [{
                    "query": spec["query"], "time_aggregation": spec["time_aggregation"],
                    **({"metric_measure_column": spec["measure"]} if spec["measure"] else {}),
                    "operator": spec["operator"], "threshold": spec["threshold"],
                    "failing_periods": {"number_of_evaluation_periods": spec["evaluations"],
                                        "min_failing_periods_to_alert": spec["failing"]}}]}),
                # The table exists only once the environment has written to it: skip the create-time check.
                skip_query_validation=True,
                auto_mitigate=True,
                resolve_configuration=cast(azure_monitor.RuleResolveConfigurationArgsDict, {
                    "auto_resolved": True, "time_to_resolve": spec["resolve"]}) if spec["resolve"] else None,
                actions=actions,
                **common,
                opts=child,
            )
            for key, spec in alert_specs(args).items()
        ]
        self.alert_names = pulumi.Output.all(*[rule.name for rule in rules]).apply(list)
        self.register_outputs({"workspace_id": self.workspace_id, "alert_names": self.alert_names})
