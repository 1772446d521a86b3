"""The dispatcher's own `PoolSizing` on the reserve simulator's clock: the code that keeps a warm
pool's `spec.replicas` (dispatcher/reserve/pool_sizing.py `_keep_size`: the size read when the lease
is taken and seeded into `ScaleDownWindow`, read again every `REREAD_SECONDS`, up at once, a fall
held while a claim younger than `TAKING_SECONDS` is not bound, asked again `FALL_RETRY_SECONDS`
later, `RESERVE_MAX_IDLE=0` empty at once) runs unchanged; only the cluster it asks is the model's
(bench/reserve_sim_pool.py), which answers every call at once.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar, cast

from dispatcher.channel.bots import BotChannels
from dispatcher.channel.identity import Unverified
from dispatcher.observability.metrics import Metrics
from dispatcher.releases.names import DEFAULT_RELEASE
from dispatcher.reserve.metrics import ReserveMetrics
from dispatcher.reserve.planner import PlannerSettings
from dispatcher.reserve.policy import ReserveSettings
from dispatcher.reserve.pool_sizing import PoolSizing
from dispatcher.store.local import LocalCoordination

T = TypeVar("T")


class ModelledCluster(Protocol):
    """What the model answers for the pool's calls (`PooledMachines.pool_size`, `scale_pool`, `pool_taking`)."""

    def pool_read(self) -> int: ...

    def scaled(self, replicas: int) -> None: ...

    def taking(self, within_seconds: float) -> int: ...


class ClusterCalls:
    """The pool calls `PoolSizing` makes (`PooledMachines`), answered by the model."""

    def __init__(self, name: str, cluster: ModelledCluster) -> None:
        self.name = name
        self._cluster = cluster

    async def pool_size(self, release: str) -> int:
        return self._cluster.pool_read()

    async def scale_pool(self, release: str, replicas: int) -> None:
        self._cluster.scaled(replicas)

    async def pool_taking(self, release: str, within_seconds: float) -> int:
        return self._cluster.taking(within_seconds)

    async def retiring_releases(self) -> frozenset[str]:
        return frozenset()  # one release, never dropped


class SimulatedSizing:
    """One lease holder's `PoolSizing`: a replica that takes the lease is a new one (nothing carried over)."""

    def __init__(self, name: str, cluster: ModelledCluster, settings: ReserveSettings, planner: PlannerSettings,
                 window_seconds: float) -> None:
        coordination = LocalCoordination()
        no_channel = Unverified("the model's bots dial no channel")
        channels = BotChannels(None, claims=coordination.claims, identity=no_channel)
        metrics = Metrics(name)
        self.sizing = PoolSizing(settings, planner, ClusterCalls(name, cluster), channels,  # type: ignore[arg-type]
                                 ReserveMetrics(metrics.registry, metrics.provider), coordination=coordination,
                                 scaledown_seconds=window_seconds)

    def keep_size(self, epoch: float, target: int) -> None:
        """This tick's ready target kept as the dispatcher keeps it (its `tick` after the plan)."""
        at_once(self.sizing.keep_sizes(epoch, {DEFAULT_RELEASE: target}))


def at_once(step: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine that never waits (every call it makes is answered at once) to its end."""
    try:
        step.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    step.close()
    raise RuntimeError("the pool's sizing waited for something the model does not answer at once")
