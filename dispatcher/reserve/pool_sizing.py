"""The warm reserve where the platform keeps the warm machines itself (`PooledMachines`:
agent-sandbox's SandboxWarmPool): the dispatcher only says how many.

A start goes to the provider as any start does (the platform gives it a warm machine when the pool
has one, else a cold one) and counts as the deployment's demand. The replica holding the planning
lease runs the reserve's own sizer once a tick (dispatcher/reserve/fleet.py: the forecast, the recent
rate, the Poisson stock over the lead time, RESERVE_MIN_IDLE and its windows, capped by
RESERVE_MAX_IDLE; its state saved for the next holder) and writes the ready target as the pool's size:
at once when it rises, and down only to the highest target of the last RESERVE_SCALEDOWN_SECONDS
(scale_window.py). The size is written again every REWRITE_SECONDS (a `kubectl scale` by hand is
undone then); a refused write is logged once and retried with backoff. docs/kubernetes.md ("The
pool's size").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable

from dispatcher.channel.bots import BotChannels
from dispatcher.machines.base import LaunchResult, LaunchSpec, MachinesError, PooledMachines
from dispatcher.reserve.fleet import UNPACED, FleetPlanning
from dispatcher.reserve.metrics import ReserveMetrics
from dispatcher.reserve.planner import PlannerSettings, Tiers
from dispatcher.reserve.policy import ReserveSettings
from dispatcher.reserve.releases import DEFAULT_ONLY
from dispatcher.reserve.scale_window import ScaleDownWindow
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.coordination import Coordination, PoolBot, ReplicaPool

log = logging.getLogger("dispatcher.reserve.pool")

TICK_SECONDS = 1.0
REWRITE_SECONDS = 60.0
# A replica that did not tick for this long may have lost the planning lease (REDIS_LEASE_SECONDS, 15 s
# by default) and had it back, another holder's size written in between: it writes its own again.
# Below it, REWRITE_SECONDS bounds how long such a size can stand.
STALL_SECONDS = 1.5 * TICK_SECONDS
RETRY_FIRST_SECONDS, RETRY_MAX_SECONDS = 1.0, 60.0
# The platform refills its pool with no create limit of ours to keep.
POOL_TIERS = Tiers(frozen=False, resume_seconds=0.0, create_per_second=UNPACED.per_second)


class PoolSizing:
    def __init__(self, settings: ReserveSettings, planner: PlannerSettings, machines: PooledMachines,
                 channels: BotChannels, metrics: ReserveMetrics, *, coordination: Coordination,
                 wall: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._machines = machines
        self._channels = channels
        self._metrics = metrics
        self._coordination = coordination
        self._wall = wall
        creates = coordination.create_limit(machines.name, UNPACED.per_second, UNPACED.burst)
        self.planning = FleetPlanning(coordination.pool, coordination.claims, settings, planner, POOL_TIERS, creates)
        self._window = ScaleDownWindow(settings.scaledown_seconds)
        self.target: int | None = None  # the planner's ready target at this replica's last plan
        self.written: int | None = None  # the size this replica last wrote (None: none since it took the lease)
        self._written_at = -math.inf
        self._ticked_at = -math.inf
        self._retry_at = -math.inf
        self._retry_seconds = RETRY_FIRST_SECONDS
        self._refusal: str | None = None  # the last refusal logged, so a standing one is logged once
        self._draining = False
        self._arrivals: set[asyncio.Task[None]] = set()

    async def launch(self, spec: LaunchSpec, *, warm_only: bool = False) -> LaunchResult:
        """A start: the provider's launch (warm or cold is the platform's), counted as demand first
        (unless another region counted it: a start's demand is its caller's region's)."""
        if not spec.counted_elsewhere:
            task = asyncio.create_task(self._arrived(), name="pool-arrival")  # never in the start's way
            self._arrivals.add(task)
            task.add_done_callback(self._arrivals.discard)
        return await self._machines.launch(spec)

    async def can_claim(self, transport: str, within: float = math.inf) -> bool:
        """Whether a warm machine of the pool, idle on the channel here or at another replica, could
        take a `transport` session now (the platform picks which; any of them would do)."""
        if any(transport in link.hello.capabilities for link in self._channels.idle()):
            return True
        try:
            views = await self._coordination.pool.views()
        except StoreUnavailable:
            return False
        return any(b.state == "idle" and transport in b.transports for v in views for b in v.bots)

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("warm pool sizing failed; retrying at the next tick")
            await asyncio.sleep(TICK_SECONDS)

    async def tick(self) -> None:
        if self._draining:
            return
        epoch = self._wall()
        if epoch - self._ticked_at > STALL_SECONDS:
            self.written = None
        self._ticked_at = epoch
        await self._coordination.pool.publish(self._view(epoch))
        planned = await self.planning.tick(epoch, [(DEFAULT_ONLY[0], "")])
        if planned is None:  # another replica sizes the pool; it writes from scratch when this one takes over
            self.written = None
            self._window.forget()
            return
        plan = planned[0].plan
        self.target = plan.ready_target
        self._metrics.planned(ready_target=plan.ready_target, covered=plan.covered)
        await self._write(epoch, self._window.size(epoch, plan.ready_target))

    async def drain(self) -> None:
        """This replica stops: the lease goes to another at once, with the sizer's state."""
        self._draining = True
        await self.planning.hand_over()
        with contextlib.suppress(StoreUnavailable):
            await self._coordination.pool.withdraw()

    async def aclose(self) -> None:
        for task in list(self._arrivals):
            task.cancel()
        await asyncio.gather(*self._arrivals, return_exceptions=True)

    async def _write(self, epoch: float, size: int) -> None:
        if size == self.written and epoch - self._written_at < REWRITE_SECONDS:
            return
        if epoch < self._retry_at:
            return
        try:
            has = await self._machines.scale_pool(size)
        except MachinesError as exc:
            self._retry_at = epoch + self._retry_seconds
            self._retry_seconds = min(self._retry_seconds * 2, RETRY_MAX_SECONDS)
            if exc.message != self._refusal:
                log.warning("the warm pool could not be sized to %d: %s", size, exc.message)
                self._refusal = exc.message
            return
        if size != self.written:
            log.info("warm pool sized to %d (it has %d now)", size, has)
        self.written, self._written_at = size, epoch
        self._retry_at, self._retry_seconds, self._refusal = -math.inf, RETRY_FIRST_SECONDS, None

    def _view(self, epoch: float) -> ReplicaPool:
        """The pool's bots idle on this replica's channel, and the sessions it serves: the
        deployment's count of active sessions sizes the stock (RESERVE_BUFFER)."""
        bots = tuple(PoolBot(link.machine_id, "idle", epoch, link.hello.image, tuple(link.hello.capabilities))
                     for link in self._channels.idle())
        return ReplicaPool(self._coordination.replica_id, bots, self._channels.session_count())

    async def _arrived(self) -> None:
        with contextlib.suppress(StoreUnavailable):
            await self._coordination.pool.arrived(self._wall(), cold=False)
