"""Build the warm reserve when it can work: the provider can hold idle machines (`WarmMachines`)
and bots have a channel to dial. Otherwise every start is cold. RESERVE_MAX_IDLE=0 sizes it to
nothing (`ReserveSettings.enabled` is False), which keeps the cold path's metrics. A provider whose
platform keeps the warm machines (`PooledMachines`) gets the pool's sizing instead (pool_sizing.py)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from dispatcher.channel.bots import BotChannels
from dispatcher.machines.base import Machines, PooledMachines, WarmMachines
from dispatcher.observability.metrics import Metrics
from dispatcher.reserve.metrics import ReserveMetrics
from dispatcher.reserve.planner import PlannerSettings
from dispatcher.reserve.policy import ReserveSettings
from dispatcher.reserve.pool_sizing import PoolSizing, pool_window
from dispatcher.reserve.prices import hot_dollars_per_month
from dispatcher.reserve.reserve import Reserve
from dispatcher.store.coordination import Coordination

log = logging.getLogger("dispatcher.reserve.reserve")


def build_reserve(
    env: Mapping[str, str], kind: str, machines: Machines, channels: BotChannels, metrics: Metrics,
    coordination: Coordination,
    max_session_seconds: int = 3600,
) -> Reserve | None:
    if isinstance(machines, PooledMachines):
        return None  # the platform keeps its warm machines: `build_pool_sizing`
    settings = ReserveSettings.from_env(env, kind)  # a bad RESERVE_* value stops start-up, named
    planner = PlannerSettings.from_env(env)
    reserve_metrics = ReserveMetrics(metrics.registry, metrics.provider, metrics.activity)
    # Built even when RESERVE_MAX_IDLE=0 (it then holds no bot): every start is a cold miss, and
    # the start → ready metric still times the cold path.
    if not isinstance(machines, WarmMachines):
        log.warning("MACHINES=%s cannot hold a warm reserve yet: every start is cold", kind)
        return None
    if not channels.enabled:
        log.warning("no BOT_CHANNEL_TOKEN: bots have no channel to wait on, so every start is cold")
        return None
    return Reserve(settings, machines, channels, reserve_metrics, coordination=coordination, planner=planner,
                   max_session_seconds=max_session_seconds, hot_dollars_per_month=hot_dollars_per_month(machines, env))


def build_pool_sizing(env: Mapping[str, str], kind: str, machines: Machines, channels: BotChannels, metrics: Metrics,
                      coordination: Coordination) -> PoolSizing | None:
    """The pool's sizing where the platform keeps the warm machines, else None."""
    if not isinstance(machines, PooledMachines):
        return None
    return PoolSizing(ReserveSettings.from_env(env, kind), PlannerSettings.from_env(env), machines, channels,
                      ReserveMetrics(metrics.registry, metrics.provider, metrics.activity), coordination=coordination,
                      scaledown_seconds=pool_window(env))
