"""The warm reserve where the platform keeps the warm machines itself (`PooledMachines`:
agent-sandbox's SandboxWarmPool): the dispatcher only says how many.

A start goes to the provider as any start does (the platform gives it a warm machine when the pool
has one, else a cold one) and counts as the deployment's demand. The replica holding the planning
lease runs the reserve's own sizer once a tick (dispatcher/reserve/fleet.py: the forecast, the recent
rate, the Poisson stock over the lead time, RESERVE_MIN_IDLE and its windows, capped by
RESERVE_MAX_IDLE; its state saved for the next holder) and keeps the pool's size at the ready target:
up at once, down after RESERVE_POOL_SCALEDOWN_SECONDS (scale_window.py).

The size is one value the replicas share outside the store, so only a lease the store itself grants
writes it (never a replica's stand-in lease while the store is away: the size then stays as it is),
checked again just before each write, which is one bounded try (REDIS_LEASE_SECONDS, 15 s by default,
outlasts it). A replica that takes the lease reads the size first and keeps it for a window before
lowering it (a deploy's lease hop lowers nothing); the size is read again every REREAD_SECONDS (a
`kubectl scale` by hand is undone then). A fall waits
while a claim younger than TAKING_SECONDS is not bound: the pool's controller deletes surplus
Sandboxes from its cache, and could delete the one being adopted. A refused call is logged once and
retried with backoff. docs/kubernetes.md ("The pool's size").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping

from dispatcher.channel.bots import BotChannels
from dispatcher.machines.base import LaunchResult, LaunchSpec, MachinesError, PooledMachines
from dispatcher.reserve.fleet import UNPACED, FleetPlanning
from dispatcher.reserve.metrics import ReserveMetrics
from dispatcher.reserve.planner import PlannerSettings, Tiers
from dispatcher.reserve.policy import ReserveSettings
from dispatcher.reserve.releases import DEFAULT_ONLY
from dispatcher.reserve.scale_window import ScaleDownWindow
from dispatcher.settings import float_setting
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.coordination import Coordination, PoolBot, ReplicaPool

log = logging.getLogger("dispatcher.reserve.pool")

TICK_SECONDS = 1.0
REREAD_SECONDS = 60.0
# A claim younger than this and not bound may be adopting a warm Sandbox (the controller adopts at its
# first reconcile, or waits 2 s for a warm candidate before it goes cold); an older one is cold or stuck.
TAKING_SECONDS = 30.0
RETRY_FIRST_SECONDS, RETRY_MAX_SECONDS = 1.0, 60.0
FALL_RETRY_SECONDS = 5.0
POOL_SCALEDOWN_SECONDS = 120.0  # RESERVE_POOL_SCALEDOWN_SECONDS: chosen by the simulator (docs/kubernetes.md)
# The store did not grant the lease it gave the planner this tick: it does not answer, or another replica
# took the lease meanwhile. Either way the size is the store's lease holder's to write.
WINDOW_MINIMUM_SECONDS = 30.0


def pool_window(env: Mapping[str, str]) -> float:
    """RESERVE_POOL_SCALEDOWN_SECONDS, as the dispatcher runs with `env` (a bad value raises SettingsError)."""
    return float_setting(env, "RESERVE_POOL_SCALEDOWN_SECONDS", POOL_SCALEDOWN_SECONDS, minimum=WINDOW_MINIMUM_SECONDS)


STORE_AWAY = "the store does not grant this replica the planning lease now: the pool's size is left as it is"
# The platform refills its pool with no create limit of ours to keep.
POOL_TIERS = Tiers(frozen=False, resume_seconds=0.0, create_per_second=UNPACED.per_second)


class PoolSizing:
    def __init__(self, settings: ReserveSettings, planner: PlannerSettings, machines: PooledMachines,
                 channels: BotChannels, metrics: ReserveMetrics, *, coordination: Coordination,
                 scaledown_seconds: float = POOL_SCALEDOWN_SECONDS, wall: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._machines = machines
        self._channels = channels
        self._metrics = metrics
        self._coordination = coordination
        self._wall = wall
        creates = coordination.create_limit(machines.name, UNPACED.per_second, UNPACED.burst)
        self.planning = FleetPlanning(coordination.pool, coordination.claims, settings, planner, POOL_TIERS, creates)
        self._window = ScaleDownWindow(scaledown_seconds, settings.max_idle)
        self.target: int | None = None  # the planner's ready target at this replica's last plan
        self.known: int | None = None  # the pool's size as this replica last read or wrote it, holding the lease
        self._known_at = -math.inf
        self._held = False  # the store granted this replica the lease at its last check
        self._fall_at = -math.inf  # a fall put off while claims were being bound: asked again from then
        self._retry_at = -math.inf
        self._retry_seconds = RETRY_FIRST_SECONDS
        self._logged: str | None = None  # the last refusal logged, so a standing one is logged once
        self._draining = False
        self._arrivals: set[asyncio.Task[None]] = set()

    async def launch(self, spec: LaunchSpec) -> LaunchResult:
        """A start: the provider's launch (warm or cold is the platform's), counted as demand first
        (unless another region counted it: a start's demand is its caller's region's)."""
        if not spec.counted_elsewhere:
            task = asyncio.create_task(self._arrived(), name="pool-arrival")  # never in the start's way
            self._arrivals.add(task)
            task.add_done_callback(self._arrivals.discard)
        return await self._machines.launch(spec)

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
        await self._coordination.pool.publish(self._view(epoch))
        planned = await self.planning.tick(epoch, [(DEFAULT_ONLY[0], "")])
        if planned is None:  # another replica sizes the pool
            self._let_go()
            return
        plan = planned[0].plan
        self.target = plan.ready_target
        self._metrics.planned(ready_target=plan.ready_target, covered=plan.covered)
        await self._keep_size(epoch, plan.ready_target)

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

    async def _keep_size(self, epoch: float, target: int) -> None:
        if not await self._lease_in_store():
            return
        if epoch < self._retry_at:
            if self._held:
                self._window.size(epoch, target)  # the window still sees every target
            return
        try:
            if not self._held or self.known is None or epoch - self._known_at >= REREAD_SECONDS:
                found = await self._machines.pool_size()
                if not self._held:
                    self._window.seed(epoch, found)  # kept a window before it is lowered
                self._held, self.known, self._known_at = True, found, epoch
            # RESERVE_MAX_IDLE=0 empties it at once: no window holds what the settings forbid.
            size = self._window.size(epoch, target) if self.settings.enabled else 0
            if size == self.known:
                self._succeeded()
                return
            if size < self.known:
                if epoch < self._fall_at:
                    return
                if taking := await self._machines.pool_taking(TAKING_SECONDS):  # a list of claims: not every tick
                    self._fall_at = epoch + FALL_RETRY_SECONDS
                    log.debug("warm pool: %d claim(s) being bound; not lowered to %d yet", taking, size)
                    return
            if not await self._lease_in_store():  # again just before the write: a stale holder never writes
                return
            await self._machines.scale_pool(size)
        except MachinesError as exc:
            self._failed(epoch, exc)
            return
        log.info("warm pool sized to %d (was %d)", size, self.known)
        self.known, self._known_at = size, epoch
        self._succeeded()

    async def _lease_in_store(self) -> bool:
        """Whether the store itself grants this replica the lease now; else the size is left alone (logged
        once when this replica held it: a store that stops answering, or a lease taken meanwhile)."""
        if await self._coordination.pool.plan_lease_in_store():
            return True
        if self._held and self._logged != STORE_AWAY:
            log.warning("warm pool: %s", STORE_AWAY)
            self._logged = STORE_AWAY
        self._let_go()
        return False

    def _let_go(self) -> None:
        self._held, self.known = False, None

    def _failed(self, epoch: float, exc: MachinesError) -> None:
        pause = min(max(self._retry_seconds, exc.retry_after or 0.0), RETRY_MAX_SECONDS)
        self._retry_at = epoch + pause
        self._retry_seconds = min(self._retry_seconds * 2, RETRY_MAX_SECONDS)
        if exc.message != self._logged:
            log.warning("the warm pool could not be sized: %s (trying again in %.0fs)", exc.message, pause)
            self._logged = exc.message

    def _succeeded(self) -> None:
        self._retry_at, self._retry_seconds, self._logged = -math.inf, RETRY_FIRST_SECONDS, None

    def _view(self, epoch: float) -> ReplicaPool:
        """The pool's bots idle on this replica's channel, and the sessions it serves: the
        deployment's count of active sessions sizes the stock (RESERVE_BUFFER)."""
        bots = tuple(PoolBot(link.machine_id, "idle", epoch, link.hello.image, tuple(link.hello.capabilities))
                     for link in self._channels.idle())
        return ReplicaPool(self._coordination.replica_id, bots, self._channels.session_count())

    async def _arrived(self) -> None:
        with contextlib.suppress(StoreUnavailable):
            await self._coordination.pool.arrived(self._wall(), cold=False)

