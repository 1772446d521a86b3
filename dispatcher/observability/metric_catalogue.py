"""The metrics the dispatcher writes as log lines (dispatcher/observability/metric_lines.py), and the buckets of
its histograms: the contract between the dispatcher and the stacks' dashboards and alarms
(stacks/aws/observability.py, stacks/gcp/observability.py), which read every name from here.

Free of prometheus_client on purpose: the Pulumi program imports it without the dispatcher's
dependencies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

LAUNCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 90, 120)
READY_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60, 90, 120)
CLAIM_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2)
FIRST_AUDIO_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60)

Kind = Literal["counter", "gauge", "histogram"]
DIMENSION = "Provider"  # every line's dimension: the machines provider (ecs, gce, fly, local)
REASON = "Reason"  # the failure lines' second dimension
# json mode: a histogram's sample lines name it in this member, their value in `value`.
SAMPLE = "histogram"


@dataclass(frozen=True)
class LineMetric:
    """One metric written on the lines, read from one Prometheus family (labels in `match` select
    its samples; the others are summed)."""

    name: str
    family: str
    kind: Kind
    unit: str  # a CloudWatch unit
    match: Mapping[str, str] = field(default_factory=dict)


METRICS: tuple[LineMetric, ...] = (
    LineMetric("Starts", "voicefleet_session_starts", "counter", "Count", {"outcome": "created"}),
    LineMetric("WarmStarts", "voicefleet_reserve_claims", "counter", "Count", {"outcome": "warm_hit"}),
    LineMetric("ColdStarts", "voicefleet_reserve_claims", "counter", "Count", {"outcome": "cold_miss"}),
    LineMetric("StartFailures", "voicefleet_session_start_failures", "counter", "Count"),
    LineMetric("ReserveIdleMachineSeconds", "voicefleet_reserve_idle_machine_seconds", "counter", "Seconds"),
    LineMetric("ReserveRetired", "voicefleet_reserve_retired", "counter", "Count"),
    LineMetric("ReserveFailedBots", "voicefleet_reserve_failed_bots", "counter", "Count"),
    LineMetric("ActiveSessions", "voicefleet_active_sessions", "gauge", "Count"),
    LineMetric("ReserveIdleBots", "voicefleet_reserve_bots", "gauge", "Count", {"state": "idle"}),
    LineMetric("ReserveWarmingBots", "voicefleet_reserve_bots", "gauge", "Count", {"state": "warming"}),
    LineMetric("ReserveBackoffSeconds", "voicefleet_reserve_backoff_seconds", "gauge", "Seconds"),
    # Each reserve tier held at the replica, priced a month (dispatcher/reserve/prices.py): dollars.
    LineMetric("ReserveHotDollarsPerMonth", "voicefleet_reserve_tier_cost_dollars_per_month", "gauge", "None",
               {"tier": "hot"}),
    LineMetric("ReserveFrozenDollarsPerMonth", "voicefleet_reserve_tier_cost_dollars_per_month", "gauge", "None",
               {"tier": "frozen"}),
    # Ended sessions' cost (dispatcher/sessions/cost_count.py): dollars at the price table's price, and the
    # machine-seconds it prices, a session's own and a warm-claimed bot's idle time before its claim.
    LineMetric("SessionCostDollars", "voicefleet_session_cost_dollars", "counter", "None"),
    LineMetric("SessionMachineSeconds", "voicefleet_session_machine_seconds", "counter", "Seconds",
               {"part": "session"}),
    LineMetric("SessionIdleMachineSeconds", "voicefleet_session_machine_seconds", "counter", "Seconds",
               {"part": "idle"}),
    LineMetric("TimeToReady", "voicefleet_start_to_ready_seconds", "histogram", "Seconds"),
    LineMetric("LaunchSeconds", "voicefleet_launch_seconds", "histogram", "Seconds"),
    # Its Count is the phone calls whose bot spoke in the interval.
    LineMetric("PhoneFirstAudio", "voicefleet_phone_first_bot_audio_seconds", "histogram", "Seconds"),
    # The SIP edges SIP_EDGE_URL lists, as last asked (dispatcher/phone/sip_edge_gauges.py, read again before
    # each line): those answering, those not, and their trunks' registrations refused (docs/sip.md, "Is the
    # edge up?", says how to alarm on them).
    LineMetric("SipEdgesAnswering", "voicefleet_sip_edge_answering", "gauge", "Count"),
    LineMetric("SipEdgesNotAnswering", "voicefleet_sip_edges_not_answering", "gauge", "Count"),
    LineMetric("SipEdgeRegistrationsRefused", "voicefleet_sip_edge_registrations_refused", "gauge", "Count"),
)
# Failures are also written per reason, one line each, under the (Provider, Reason) dimensions.
FAILURES_BY_REASON = LineMetric("StartFailures", "voicefleet_session_start_failures", "counter", "Count")
# Not in the registry: the coordination store's health as `/healthz` reports it (several replicas only).
STORE_UP = LineMetric("StoreUp", "", "gauge", "None")


def metric_names() -> tuple[str, ...]:
    """Every metric name the lines may carry: what the stacks' dashboards and alarms refer to."""
    return (*(m.name for m in METRICS), STORE_UP.name)
