"""The usage count, built for the app: the rollups where the replicas share them, the per-key
counters in `/metrics`, and the timeline listener that adds each ended session."""

from __future__ import annotations

from collections.abc import Mapping

from dispatcher.observability.metrics import Metrics
from dispatcher.sessions.cost import SessionCosts
from dispatcher.sessions.timeline import SessionTimeline
from dispatcher.usage.key_metrics import KeyUsageMetrics
from dispatcher.usage.rollups import rollups_for
from dispatcher.usage.usage_count import Entry, Note, UsageCount
from voicefleet_settings.read import setting_int


def build_usage(env: Mapping[str, str], coordination: object, costs: SessionCosts, timeline: SessionTimeline,
                metrics: Metrics, entry: Entry, note: Note) -> UsageCount:
    rollups = rollups_for(coordination, setting_int(env, "USAGE_KEEP_DAYS"))
    usage = UsageCount(costs, timeline, entry, rollups, KeyUsageMetrics(metrics.registry), note)
    timeline.listeners.append(usage.timeline_event)
    timeline.closers.append(usage.aclose)
    return usage
