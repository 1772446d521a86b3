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
lowering it; the size is read again every REREAD_SECONDS (a `kubectl scale` by hand is undone then).
A fall waits while a claim younger than TAKING_SECONDS is not bound (the controller could delete the
Sandbox being adopted). A refused call is logged once and retried with backoff. Each release with
traffic has a pool of its own, planned from its share (split.py) with its own window; one at weight 0
is emptied at once. docs/kubernetes.md ("The pool's size", "Pools per release").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from dispatcher.channel.bots import BotChannels
from dispatcher.machines.base import LaunchResult, LaunchSpec, MachinesError, PooledMachines
from dispatcher.releases.catalogue import Catalogue
from dispatcher.releases.live import LiveReleases
from dispatcher.releases.traffic import Traffic
from dispatcher.reserve.fleet import UNPACED, FleetPlanning
from dispatcher.reserve.metrics import ReserveMetrics
from dispatcher.reserve.planner import PlannerSettings, Tiers
from dispatcher.reserve.policy import ReserveSettings
from dispatcher.reserve.releases import DEFAULT_ONLY, WarmRelease
from dispatcher.reserve.scale_window import ScaleDownWindow
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.coordination import Coordination, PoolBot, ReplicaPool
from voicefleet_settings.read import setting_float

log = logging.getLogger("dispatcher.reserve.pool")

TICK_SECONDS = 1.0
REREAD_SECONDS = 60.0
# A claim younger than this and not bound may be adopting a warm Sandbox (the controller adopts at its
# first reconcile, or waits 2 s for a warm candidate before it goes cold); an older one is cold or stuck.
TAKING_SECONDS = 30.0
RETRY_FIRST_SECONDS, RETRY_MAX_SECONDS = 1.0, 60.0
FALL_RETRY_SECONDS = 5.0
POOL_SCALEDOWN_SECONDS = 120.0  # RESERVE_POOL_SCALEDOWN_SECONDS: chosen by the simulator (docs/kubernetes.md)


def pool_window(env: Mapping[str, str]) -> float:
    """RESERVE_POOL_SCALEDOWN_SECONDS, as the dispatcher runs with `env` (a bad value raises SettingsError)."""
    return setting_float(env, "RESERVE_POOL_SCALEDOWN_SECONDS")


STORE_AWAY = "the store does not grant this replica the planning lease now: the pool's size is left as it is"
# The platform refills its pool with no create limit of ours to keep.
POOL_TIERS = Tiers(frozen=False, resume_seconds=0.0, create_per_second=UNPACED.per_second)
NO_POOL = "k8s_no_release_pool"  # a release at weight 0 with no pool of its own: nothing to empty


@dataclass
class KeptPool:
    """One release's pool as the lease holder keeps it: its window of targets and its size as last read or written."""

    window: ScaleDownWindow
    known: int | None = None
    known_at: float = -math.inf
    fall_at: float = -math.inf  # a fall put off while claims were being bound: asked again from then
    target: int | None = None
    seeded: bool = field(default=False)


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
        self._scaledown_seconds = scaledown_seconds
        self.pools: dict[str, KeptPool] = {}  # release → its pool as kept, holding the lease
        self.with_traffic: tuple[WarmRelease, ...] = DEFAULT_ONLY  # until the traffic is first read
        self.without_traffic: tuple[str, ...] = ()  # releases at weight 0: their pools emptied
        self.listed: frozenset[str] = frozenset()  # the releases RELEASES lists (a retiring one's pool is emptied)
        self._held = False  # the store granted this replica the lease at its last check
        self._retry_at = -math.inf
        self._retry_seconds = RETRY_FIRST_SECONDS
        self._logged: str | None = None  # the last refusal logged, so a standing one is logged once
        self._draining = False
        self._arrivals: set[asyncio.Task[None]] = set()

    @property
    def target(self) -> int | None:
        """The planner's ready target at this replica's last plan, every release's together."""
        targets = [kept.target for kept in self.pools.values() if kept.target is not None]
        return sum(targets) if targets else None

    @property
    def known(self) -> int | None:
        """The pools' sizes as this replica last read or wrote them, holding the lease, together."""
        sizes = [kept.known for kept in self.pools.values() if kept.known is not None]
        return sum(sizes) if sizes else None

    def follow(self, traffic: Traffic, catalogue: Catalogue) -> None:
        """The traffic changed: each release with traffic gets its share of the forecast; one at weight 0
        has its pool emptied."""
        shares = {release.name: traffic.weights.get(release.name, 0) / 100 for release in catalogue.releases}
        self.with_traffic = tuple(WarmRelease(name, None, share) for name, share in shares.items() if share > 0)
        self.without_traffic = tuple(name for name, share in shares.items() if share <= 0)
        self.listed = frozenset(shares)

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
        releases: Sequence[WarmRelease] = self.with_traffic or DEFAULT_ONLY
        planned = await self.planning.tick(epoch, [(release, "") for release in releases])
        if planned is None:  # another replica sizes the pools
            self._let_go()
            return
        for each in planned:
            self._kept(each.release.name).target = each.plan.ready_target
        self._metrics.planned(ready_target=sum(p.plan.ready_target for p in planned),
                              covered=sum(p.plan.covered for p in planned))
        await self.keep_sizes(epoch, {each.release.name: each.plan.ready_target for each in planned})

    async def keep_sizes(self, epoch: float, targets: Mapping[str, int]) -> None:
        """Each release's pool at its planned target, the releases at weight 0 emptied, holding the lease."""
        if not await self._lease_in_store():
            return
        if epoch < self._retry_at:
            if self._held:
                for release, target in targets.items():  # the windows still see every target
                    self._kept(release).window.size(epoch, target)
            return
        try:
            unused = [*self.without_traffic, *sorted(await self._retired())]
            every = [*((name, target, False) for name, target in targets.items()),
                     *((name, 0, True) for name in dict.fromkeys(unused) if name not in targets)]
            for release, target, emptied in every:
                if not await self._keep_size(epoch, release, target, emptied=emptied):
                    return  # the lease is no longer this replica's
        except MachinesError as exc:
            self._failed(epoch, exc)
            return
        self._held = True
        self._succeeded()

    def _kept(self, release: str) -> KeptPool:
        if (kept := self.pools.get(release)) is None:
            kept = self.pools[release] = KeptPool(ScaleDownWindow(self._scaledown_seconds, self.settings.max_idle))
        return kept

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

    async def _keep_size(self, epoch: float, release: str, target: int, *, emptied: bool) -> bool:
        """The release's pool at its target: up at once, down after its window (at once when `emptied`:
        the release has no traffic), never while one of its claims is being bound. False: the lease went."""
        kept = self._kept(release)
        if not self._held or kept.known is None or epoch - kept.known_at >= REREAD_SECONDS:
            try:
                found = await self._machines.pool_size(release)
            except MachinesError as exc:
                if emptied and exc.reason == NO_POOL:  # no pool of its own: nothing to empty (asked again later)
                    kept.known, kept.known_at = 0, epoch
                    return True
                raise
            if not kept.seeded:
                kept.window.seed(epoch, found)  # kept a window before it is lowered
                kept.seeded = True
            kept.known, kept.known_at = found, epoch
        # RESERVE_MAX_IDLE=0 empties it at once: no window holds what the settings forbid.
        size = 0 if emptied or not self.settings.enabled else kept.window.size(epoch, target)
        if size == kept.known:
            return True
        if size < kept.known:
            if epoch < kept.fall_at:
                return True
            if taking := await self._machines.pool_taking(release, TAKING_SECONDS):  # a list of claims: not every tick
                kept.fall_at = epoch + FALL_RETRY_SECONDS
                log.debug("warm pool of %s: %d claim(s) being bound; not lowered to %d yet", release, taking, size)
                return True
        if not await self._lease_in_store():  # again just before the write: a stale holder never writes
            return False
        await self._machines.scale_pool(release, size)
        log.info("warm pool of release %s sized to %d (was %d)", release, size, kept.known)
        kept.known, kept.known_at = size, epoch
        return True

    async def _retired(self) -> frozenset[str]:
        """The releases the stack keeps a pool for only until their last sessions end and this replica does
        not list: nothing starts on them here, so their warm machines go at once. A replica of an older
        deployment, which still lists the release, sizes it until the rollout replaces it."""
        if not self.listed:  # the traffic not read yet: nothing is known to be dropped
            return frozenset()
        return frozenset(r for r in await self._machines.retiring_releases() if r not in self.listed)

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
        self._held = False
        for kept in self.pools.values():
            kept.known, kept.seeded = None, False

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



def follow_releases(sizing: PoolSizing, live: LiveReleases) -> None:
    """The pools are sized for the releases with traffic now, and after every change."""
    live.listeners.append(lambda traffic: sizing.follow(traffic, live.catalogue))
    sizing.follow(live.traffic, live.catalogue)
