"""The usage count, built for the app: the rollups where the replicas share them, the per-key
counters in `/metrics`, the timeline listener that adds each ended session, and the bots' reports of
their use during the call."""

from __future__ import annotations

from collections.abc import Mapping

from dispatcher.channel.bots import BotChannels
from dispatcher.observability.metrics import Metrics
from dispatcher.sessions.cost import SessionCosts
from dispatcher.sessions.timeline import SessionTimeline
from dispatcher.store.client import Store
from dispatcher.store.transport_so_far import MemoryTransportSoFar, StoreTransportSoFar
from dispatcher.store.usage_so_far import MemorySoFar, StoreSoFar
from dispatcher.usage.key_metrics import KeyUsageMetrics
from dispatcher.usage.rollups import rollups_for
from dispatcher.usage.so_far import UsageSoFar
from dispatcher.usage.usage_count import Entry, Note, UsageCount
from voicefleet_settings.read import setting_float, setting_int


def build_usage(env: Mapping[str, str], coordination: object, costs: SessionCosts, timeline: SessionTimeline,
                metrics: Metrics, entry: Entry, note: Note, channels: BotChannels) -> UsageCount:
    rollups = rollups_for(coordination, setting_int(env, "USAGE_KEEP_DAYS"))
    store = getattr(coordination, "store", None)
    every = setting_float(env, "USAGE_REPORT_SECONDS")
    if isinstance(store, Store):  # shared by the replicas
        so_far = UsageSoFar(StoreSoFar(store), every, timeline.note, StoreTransportSoFar(store))
    else:
        so_far = UsageSoFar(MemorySoFar(), every, timeline.note, MemoryTransportSoFar())
    so_far.follow(channels)  # the bots' reports of their use during the call
    costs.so_far = so_far.keeping  # every cost read counts a killed bot's last report (sessions/cost.py)
    costs.transport_so_far = so_far.transport  # and its relayed bytes as it last reported them
    usage = UsageCount(costs, timeline, entry, rollups, KeyUsageMetrics(metrics.registry), note)
    timeline.listeners.append(usage.timeline_event)
    timeline.closers.append(usage.aclose)
    return usage
