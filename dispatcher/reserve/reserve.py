"""The warm reserve: bots started ahead of demand, each claimed by exactly one session. One
reserve for the whole deployment, whatever the number of replicas.

`launch(spec)` is what `POST /start` calls instead of the provider's launch: it claims an idle bot
of the session's release on this replica's channel (dispatcher/reserve/claim.py: taken off the pool
synchronously, assigned the session over the channel, re-tagged by the provider), else one held
at another replica (dispatcher/reserve/elsewhere.py: that replica claims it for this session),
else a frozen bot, held here or at another replica, thawed for it (dispatcher/reserve/frozen.py).
With no idle bot anywhere, or any failure on the way, it launches cold as before: the reserve is
never a new way to fail. A claimed bot is an ordinary session machine afterwards: it exits with
its session and its machine is destroyed; nothing is ever returned to the pool.

`run()` ticks every second: every replica publishes the bots it holds and retires its own idle
bots of an old image (or of a release without traffic now) or whose channel dropped; the replica
holding the planning lease (dispatcher/reserve/fleet.py) sizes the deployment's reserve, one part
per release with traffic (dispatcher/reserve/split.py), and carries the plan out, launching
bots and retiring surplus ones wherever they are held. docs/reserve.md has the why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass, replace
from typing import Any

from botchannel.contract import Report
from dispatcher.channel.bots import BotChannels, BotLink
from dispatcher.machines.base import FrozenMachines, IdleMachine, LaunchResult, LaunchSpec, WarmMachines
from dispatcher.machines.chore_turn import ChoreTurn
from dispatcher.observability.log_text import shown
from dispatcher.reserve import elsewhere
from dispatcher.reserve.backoff import FailedBotsByImage
from dispatcher.reserve.claim import StartRecord, WarmClaim, serves
from dispatcher.reserve.elsewhere import ClaimsElsewhere, TakenFrozen, holders
from dispatcher.reserve.fleet import FleetPlanning, Planned, creates_of, warming_ids
from dispatcher.reserve.frozen import FrozenTier, NoFrozenTier, tiers_of
from dispatcher.reserve.idle import IdleRecords
from dispatcher.reserve.measured_starts import MeasuredStarts
from dispatcher.reserve.metrics import ReserveMetrics
from dispatcher.reserve.planner import PlannerSettings, Tiers
from dispatcher.reserve.policy import ReserveSettings, cold_start_sigma
from dispatcher.reserve.ready_elsewhere import seconds_to_ready
from dispatcher.reserve.refills import Refills
from dispatcher.reserve.releases import ReserveReleases
from dispatcher.reserve.retirement import Retirements, taken_for_retirement
from dispatcher.reserve.sizer import FleetSizer
from dispatcher.reserve.start_times import START_RECORD_SECONDS, StartTimes
from dispatcher.reserve.stranded import ClaimState, claim_state, taken_from_stranded
from dispatcher.reserve.warming import WARMING_GRACE_SECONDS, Warming
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.coordination import Coordination, PoolBot, ReplicaPool

log = logging.getLogger("dispatcher.reserve.reserve")

TICK_SECONDS = 1.0
SWEEP_SECONDS = 30.0  # provider-wide idle sweep (a list call): rare, it only catches leftovers
# With the reserve off and the last sweep finding no idle machine, nothing makes new ones: the sweep
# (a list of every machine, the whole fleet at 100,000 calls) waits this long for a replica's leftovers.
SWEEP_OFF_SECONDS = 300.0
# A reserve bot's credential outlives its longest life: its idle wait, then one session.
CREDENTIAL_SLACK_SECONDS = WARMING_GRACE_SECONDS * 5


class Reserve:
    def __init__(
        self,
        settings: ReserveSettings,
        machines: WarmMachines,
        channels: BotChannels,
        metrics: ReserveMetrics,
        *,
        coordination: Coordination,  # claims across replicas, the deployment's pool, the planning lease
        planner: PlannerSettings | None = None,
        tiers: Tiers | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,  # epoch seconds: the pool's and the forecast's clock
        max_session_seconds: int = 3600,
        hot_dollars_per_month: float | None = None,  # one running idle bot (dispatcher/reserve/prices.py)
    ) -> None:
        self.settings = settings
        self._coordination = coordination
        self._claims = coordination.claims
        self._sweep_turn = ChoreTurn(coordination.turns, machines, "reserve-sweep")  # one replica a period
        self._idle_listed = True  # what the last sweep listed (none yet: as if some, swept soon)
        self._draining = False
        self._machines = machines
        self._channels = channels
        self._metrics = metrics
        self._clock = clock
        self._wall = wall
        self._max_session_seconds = max_session_seconds  # how long a claimed bot's credential must last
        self.idle_records = IdleRecords()  # bot id → its idle hello, while it is in the pool
        planner = planner or PlannerSettings()
        self.planning = FleetPlanning(coordination.pool, coordination.claims, settings, planner,
                                      tiers or tiers_of(machines),
                                      creates_of(machines, coordination))
        # The releases it holds bots for (each one's own), told of each traffic change (wiring.py).
        self.releases = ReserveReleases(machines)
        self._elsewhere = ClaimsElsewhere(coordination, self.releases.image_of)
        self._inflight: dict[str, asyncio.Future[LaunchResult]] = {}
        self._starts: dict[str, StartRecord] = {}
        self._wake = asyncio.Event()
        self._retirements = Retirements(machines, metrics)
        self.measured = MeasuredStarts(coordination.pool, settings.cold_start_seconds,
                                       cold_start_sigma(machines.name), self._retirements.spawn)
        self._warming = Warming(machines, self._claims, self._retirements, self._bot_failed)  # launched, no hello yet
        # Read through `self`: the clock may be swapped after construction (a test's fake time).
        self._refills = Refills(machines, self._warming, lambda image: self.planning.refill_token(image),
                                self._credential, lambda: self._clock())
        self._claim = WarmClaim(machines, channels, self._claims, self.idle_records, self._retirements,
                                self._starts, self.releases.image_of, lambda: self._clock())
        self._last_tick: float | None = None
        # Where the provider can freeze a machine, idle bots beyond the hot ones are frozen
        # (dispatcher/reserve/frozen.py); their records stay in `idle_records`, in state frozen.
        self._frozen = (FrozenTier(machines, channels, self._claims, self.idle_records, self._retirements, metrics,
                                   self._claim, planner, lambda: self._clock(), elsewhere=self._elsewhere,
                                   replica_id=coordination.replica_id,
                                   resumed=lambda seconds: self.planning.sizer.resume.observe(seconds))
                        if isinstance(machines, FrozenMachines) else NoFrozenTier())
        self.failed_bots = FailedBotsByImage()  # a broken bot file or image: back off, never loop
        if hot_dollars_per_month is not None:
            metrics.hot_price(hot_dollars_per_month)
        channels.idle_listeners.append(self._on_idle_hello)
        channels.close_listeners.append(self._on_close)
        channels.report_listeners.append(self._on_report)

    @property
    def sizer(self) -> FleetSizer:
        """The deployment's estimates (the cold start's quote among them), as the planner last saved them."""
        return self.planning.sizer

    # --- POST /start ----------------------------------------------------------------------

    @property
    def start_times(self) -> StartTimes:
        """The deployment's last measured cold starts, as the wait a cold start is told
        (dispatcher/sessions/ready_estimate.py): every replica's, read back from the store."""
        return self.measured.times

    def launch_wait(self) -> float:
        """Seconds a cold launch asked for now waits for the provider's create limit."""
        return self.planning.seconds_until_token()

    async def can_claim(self, transport: str, within: float = math.inf) -> bool:
        """Whether a warm bot, here or at another replica, could take a `transport` session now and
        be ready `within` seconds: an idle one, or a frozen one whose resume is quoted within them
        (the resume's estimate, `FleetSizer.resume`: Fly's suspended machines in a few hundred ms)."""
        # Asked before the session's release is drawn: a bot of any release with traffic counts.
        images = self.releases.current_images()
        if any(serves(link, image, transport) for link in self._channels.idle() for image in images):
            return True
        frozen_fits = self.planning.sizer.resume.quote() <= within
        if frozen_fits and any(self._frozen.holds(image, transport) for image in images):
            return True
        try:
            views = await self._coordination.pool.views()
        except StoreUnavailable:
            return False
        me = self._coordination.replica_id
        return any(holders(views, me, image, transport)
                   or (frozen_fits and holders(views, me, image, transport, "frozen")) for image in images)

    def resize(self, settings: ReserveSettings) -> None:
        """New bounds from an admin's runtime change (dispatcher/api/runtime_capacity.py): the next
        tick plans with them; bots already running are retired by the plan as usual, never killed."""
        self.settings = settings
        self.planning.resize(settings)
        self.wake()

    def wake(self) -> None:
        """Size the reserve now, not at the next tick (the releases' traffic changed)."""
        self._wake.set()

    def spilled_away(self) -> None:
        """A start that arrived here went to another region: still this region's demand."""
        self._retirements.spawn(self._coordination.pool.arrived(self._wall(), cold=False))

    async def region_figures(self) -> RegionFigures:
        """What other regions size their reserves by: the store's count of the region's bots (else
        this replica's), its expected starts and the lead it plans over."""
        images = self.releases.current_images()
        sizer = self.planning.sizer
        rate = sizer.advertised_demand(self._wall(), planning=self.planning.holding).rate
        refill = sizer.lead_seconds
        try:
            views = await self._coordination.pool.views()
        except StoreUnavailable:
            return RegionFigures(len(self._channels.idle()), len(self._warming), rate, refill)
        idle = sum(1 for v in views for b in v.bots if b.state == "idle" and b.image in images)
        warming = len(warming_ids(views))
        return RegionFigures(idle, warming, rate, refill)

    async def launch(self, spec: LaunchSpec, *, warm_only: bool = False) -> LaunchResult:
        """A warm claim if an idle bot is there (here or at another replica), else the provider's
        cold launch (`warm_only`: else `NoWarmBot`, and nothing is launched)."""
        began = self._clock()
        inflight = self._inflight.get(spec.session_id)
        if inflight is not None:  # the same key, concurrently, on this replica: one machine
            return replace(await asyncio.shield(inflight), created=False)
        result_future: asyncio.Future[LaunchResult] = asyncio.get_running_loop().create_future()
        result_future.add_done_callback(_consume_exception)
        self._inflight[spec.session_id] = result_future
        try:
            # Only a bot of the session's release (a release at weight 0 has none: it starts cold).
            result = await self._claim.claim(spec, began)
            if result is None:
                result = await self._elsewhere.claim(spec)
            if result is None:  # no hot bot anywhere: a frozen one, thawed
                result = await self._frozen.claim(spec, began)
            if result is None:
                result = await self._frozen.claim_elsewhere(spec, began)
            if result is None and warm_only:
                raise NoWarmBot(spec.session_id)
            warm = result is not None
            if not spec.counted_elsewhere:  # a start's demand is its caller's region's
                self._retirements.spawn(self._coordination.pool.arrived(self._wall(), cold=not warm))  # the planner's
            if result is None:
                self._metrics.claimed(warm=False, release=spec.release)
                self._starts[spec.session_id] = StartRecord(began, False, spec.release)
                result = await self._machines.launch(spec)
            else:
                self._metrics.claimed(warm=True, release=spec.release, seconds=self._clock() - began)
            if not result.created:  # a replay: its start was timed by the call that made it
                self._starts.pop(spec.session_id, None)
            result_future.set_result(result)
            return result
        except BaseException as exc:
            result_future.set_exception(exc)
            raise
        finally:
            del self._inflight[spec.session_id]
            self._wake.set()  # refill now, not at the next tick

    async def idle_by_release(self) -> dict[str, int]:
        """Idle bots across the deployment, by the release whose image their hello reported (a bot
        of a release without traffic is being retired: not counted)."""
        release_of = self.releases.current_images()
        counts: dict[str, int] = {}
        for view in await self._coordination.pool.views():
            for bot in view.bots:
                release = release_of.get(bot.image) if bot.state == "idle" else None
                if release is not None:
                    counts[release] = counts.get(release, 0) + 1
        return counts

    # --- what the bots tell us ------------------------------------------------------------

    def _on_idle_hello(self, link: BotLink) -> None:
        if self._frozen.came_back(link):  # thawed for a claim, which takes it now
            return
        now = self._clock()
        launched = self._warming.forget(link.machine_id)
        if launched is not None:
            self.planning.sizer.cold.observe(now - launched)
            self.measured.observe(now - launched)
        image = link.hello.image
        if image in self.releases.current_images() and (failed := self.failed_bots.healthy(image)):
            log.info("reserve: bot %s is up after %d failed bot(s) of its image; its backoff is over",
                     link.machine_id, failed)
        self.idle_records.greeted(link.machine_id, now)
        # Its launcher may be another replica, waiting for this hello.
        self._retirements.spawn(self._claims.record_hello(link.machine_id))
        self._wake.set()

    def _on_close(self, link: BotLink) -> None:
        if self.idle_records.forget(link.machine_id):
            # An idle bot whose channel dropped can never be claimed: retire its machine. (One
            # taken off the pool, by a claim or a retirement, was forgotten when it was taken.)
            self._retirements.soon(link.machine_id, "channel_lost")
            self._wake.set()

    def _on_report(self, link: BotLink, report: Report) -> None:
        if report.event == "ended" and report.reason == "bot_failed":
            # Its bot file imported but cannot serve (bot() raised, or returned at once).
            self._bot_failed(link.hello.image, report.detail or "the bot failed in its session")
            return
        if report.event != "ready":
            return
        started = self._starts.pop(report.session_id, None)
        if started is not None:
            self._ready_after(self._clock() - started.began, warm=started.warm, release=started.release)
        elif link.hello.session_id is not None:  # a cold bot launched at another replica
            self._retirements.spawn(self._cold_ready_elsewhere(report))

    def _ready_after(self, seconds: float, *, warm: bool, release: str) -> None:
        self._metrics.ready_after(seconds, warm=warm, release=release)
        if not warm:  # a session's own cold start, as its caller waited for it
            self.planning.sizer.cold.observe(seconds)
            self.measured.observe(seconds)

    async def _cold_ready_elsewhere(self, report: Report) -> None:
        timed = await seconds_to_ready(self._coordination.timelines, report.session_id, reported_at=report.t,
                                       now=self._wall(), within=START_RECORD_SECONDS)
        if timed is not None:
            self._ready_after(timed.seconds, warm=False, release=timed.release)

    # --- keeping it sized -----------------------------------------------------------------

    async def run(self) -> None:
        """Sizes the reserve every tick and after every claim, hello and drop; sweeps old idle
        machines at the provider every SWEEP_SECONDS, one replica of the deployment a period (the
        sweep lists every idle machine: dispatcher/machines/chore_turn.py)."""
        last_sweep, spread = self._clock(), 1.0
        while True:
            try:
                await self.refill()
                period = self._sweep_period()
                # Jittered as the reaper's: replicas take the deployment's turn by turns, not the same one.
                if self._clock() - last_sweep >= period * spread:
                    last_sweep, spread = self._clock(), random.uniform(0.8, 1.2)  # noqa: S311 (not crypto)
                    if not self._draining and await self._sweep_turn.mine(period):
                        await self._swept_by_turn()
            except Exception:
                log.exception("reserve refill failed; retrying at the next tick")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK_SECONDS)
            self._wake.clear()

    async def drain(self) -> None:
        """This replica is shutting down: no new idle bot (the ones it has leave with their channel),
        and planning goes to another replica at once rather than one lease later."""
        self._draining = True
        await self.planning.hand_over()
        await self._coordination.pool.withdraw()

    async def refill(self) -> None:
        if self._draining:
            return
        now = self._clock()
        await self.measured.reload(now)
        self._account(now)
        await self._warming.settle()
        await self._warming.drop_dead(now, self.planning.sizer.cold.mean)
        images = self.releases.current_images()
        self.failed_bots.keep(images.keys())
        await self._retire_old_images(images.keys())
        await self._frozen.retire_stale(images.keys())
        await self._coordination.pool.publish(self._view(now))
        with_images = [(release, self.releases.reported(release)) for release in self.releases.with_traffic]
        planned = await self.planning.tick(self._wall(), with_images)
        if planned is not None:
            self._metrics.planned(ready_target=sum(p.plan.ready_target for p in planned),
                                  covered=sum(p.plan.covered for p in planned))
            for (_, image), one in zip(with_images, planned, strict=True):
                await self._carry_out(one, image)
        self._frozen.account()
        self._metrics.hot_tier(len(self._channels.idle()))
        self._metrics.size(idle=len(self._channels.idle()), warming=len(self._warming))
        worst = self.failed_bots.worst()
        self._metrics.backoff(worst.waiting_seconds(self._clock()), in_a_row=worst.in_a_row)

    def _view(self, now: float) -> ReplicaPool:
        """The bots this replica holds, for the deployment's count (epoch times: replicas share them)."""
        epoch = self._wall()
        links = self._channels.idle()
        since = self.idle_records.since((link.machine_id for link in links), now)
        bots = [PoolBot(link.machine_id, "idle", epoch - (now - since[link.machine_id]), link.hello.image,
                        tuple(link.hello.capabilities)) for link in links]
        bots += self._warming.pool_bots(epoch, now)
        bots += self._frozen.pool_bots(epoch, now)
        return ReplicaPool(self._coordination.replica_id, tuple(bots), self._channels.session_count())

    async def _retire_old_images(self, images: Set[str]) -> None:
        """Idle bots of an image no release with traffic has go at once, wherever planning is: no
        claim may pick one (a release set to weight 0 loses its idle bots; its sessions run on)."""
        while (link := self._channels.take_idle(lambda candidate: candidate.hello.image not in images)) is not None:
            self.idle_records.forget(link.machine_id)
            await self._retirements.retire(link.machine_id, self.releases.retirement_reason(link.hello.image), link)

    async def _carry_out(self, planned: Planned, image: str) -> None:
        """The planner's plan for one release (whose bots report `image`): surplus retired, hot bots
        frozen and frozen ones resumed to hot where they are held, launches here."""
        plan, me = planned.plan, self._coordination.replica_id
        for bot in planned.hot[:plan.retire_hot] + planned.frozen[:plan.retire_frozen]:
            if bot.replica_id == me:
                await self.retire_here(bot.bot_id)
            else:
                await self._elsewhere.retire(bot.replica_id, bot.bot_id)
        for bot in planned.hot[plan.retire_hot:plan.retire_hot + plan.freeze]:
            if bot.replica_id == me:
                self._frozen.freeze(bot.bot_id)
            else:
                await self._elsewhere.freeze(bot.replica_id, bot.bot_id)
        for bot in planned.frozen[plan.retire_frozen:plan.retire_frozen + plan.resume]:
            if bot.replica_id == me:
                self._frozen.resume(bot.bot_id)
            else:
                await self._elsewhere.resume(bot.replica_id, bot.bot_id)
        # The release's own backoff: another release's broken bots never hold its refills back.
        launches = self.failed_bots.of(image).launches(self._clock(), planned.plan.launch,
                                                       warming=self._warming.of(image))
        await self._refills.launch(launches, planned.release, image)

    async def retire_here(self, bot_id: str) -> bool:
        """Retires an idle or frozen bot this replica holds, if it still is (a claim may have taken it)."""
        link = self._channels.take_idle(_machine(bot_id))
        if link is None:
            return await self._frozen.retire(bot_id)
        self.idle_records.forget(bot_id)
        await self._retirements.retire(bot_id, "aged_or_surplus", link)
        return True

    async def answer(self, session_id: str, method: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """Another replica's claim of a bot held here, or the planner's order for one (the relay's)."""
        return await elsewhere.answer(_HeldHere(self, self._frozen, self._clock), session_id, method, params)

    async def claim_here(self, spec: LaunchSpec) -> LaunchResult | None:
        """Another replica's start claims an idle bot of this replica's channel."""
        if self._draining:
            return None  # its bots leave with their channel
        result = await self._claim.claim(spec, self._clock())
        self._wake.set()
        return result

    def _bot_failed(self, image: str, reason: str) -> None:
        """A bot of `image` failed: that image's refills back off."""
        failed = self.failed_bots.failed(self._clock(), image, reason)
        self._metrics.failed_bot()
        log.warning("reserve: %d failed bot(s) of image %s in a row, its next launch in %.0f s: %s",
                    failed.in_a_row, image, failed.waiting_seconds(self._clock()), reason)

    def health(self, *, with_reason: bool = False) -> str | None:
        """A line for /healthz while the reserve is backing off after failed bots (the image backing
        off the most); None otherwise. The last failure's text is a bot's own error, which a caller
        can choose through its start body: only `with_reason` (an admin's) adds it, escaped."""
        failed = self.failed_bots.worst()
        if not failed.in_a_row:
            return None
        line = (f"reserve backing off: {failed.in_a_row} failed bot(s) in a row, next launch in "
                f"{failed.waiting_seconds(self._clock()):.0f} s")
        return f"{line}; last: {shown(failed.last_reason, limit=1000)}" if with_reason else line

    def _account(self, now: float) -> None:
        """Adds the last interval's idle and warming machine-seconds (the reserve's cost)."""
        if self._last_tick is not None:
            elapsed = now - self._last_tick
            self._metrics.idle_time(idle_seconds=elapsed * len(self._channels.idle()),
                                    warming_seconds=elapsed * len(self._warming))
        self._last_tick = now
        horizon = now - START_RECORD_SECONDS
        for session_id, started in list(self._starts.items()):
            if started.began < horizon:
                del self._starts[session_id]

    async def sweep(self) -> int:
        """The reaper's part for reserve machines: any idle machine at the provider (this replica's
        or not, a dispatcher's that died) older than its idle age + grace is stopped, whether its
        channel is alive or gone, unless a session claimed it since it was listed (its claim record:
        retirement.py) and that claim may still be its (one that never landed: stranded.py). Returns
        how many were stopped. A draining replica sweeps nothing: it may run the last configuration
        for as long as its calls last, and would take the new replicas' bots (another image, another
        K8S_BOT_SECRET) for stale ones; the replicas that stay sweep."""
        return (await self._swept())[0]

    async def _swept(self) -> tuple[int, bool]:
        """`sweep`'s stops, and whether it went through every listed machine (False: the store stopped answering)."""
        if self._draining:
            return 0, True
        stopped = 0
        listed = await self._machines.idle_machines()
        self._idle_listed = bool(listed)
        for machine in listed:
            # A provider that lists a claimed machine as idle (its claim lived in a store that lost
            # its keys) is not believed for a bot whose channel here serves a session.
            if machine.created_at < self._sweep_horizon(machine) and not self._channels.serving(machine.bot_id):
                link = self._channels.take_idle(_machine(machine.bot_id))
                # Not held here: a replica holding it may have claimed it since the listing, or be
                # claiming it now. The bot's claim record decides, first wins.
                taken = True if link is not None else await taken_for_retirement(self._claims, machine.bot_id)
                if taken is None:
                    return stopped, False  # the store does not answer: the next sweep, once it does
                reason = "reaped_idle_age" if link is None else "aged_or_surplus"
                if not taken:
                    stranded = await self._stranded(machine.bot_id)
                    if stranded is None:
                        return stopped, False
                    if not stranded:
                        continue
                    reason = "claim_stranded"
                self.idle_records.forget(machine.bot_id)
                await self._retirements.retire(machine.bot_id, reason, link)
                stopped += 1
        return stopped, True

    async def _stranded(self, bot_id: str) -> bool | None:
        """Whether a bot a session claimed holds a claim that never landed (stranded.py), now taken for its
        retirement; None when the store does not answer (the next sweep)."""
        state, session_id = await claim_state(self._coordination, bot_id, self._max_session_seconds)
        if state is ClaimState.GONE:
            return False  # its record gone meanwhile (given back, run out): the next sweep sees it anew
        if state is ClaimState.UNKNOWN or session_id is None:
            return None
        if not state.stranded:
            log.info("reserve bot %s listed idle was claimed by session %s (%s): not retired",
                     shown(bot_id), shown(session_id), state.value)
            return False
        # Judged on what the store said a moment ago: retired only if the claim is still that one.
        taken = await taken_from_stranded(self._coordination, bot_id, session_id)
        if taken is None:
            return None
        if not taken:
            log.info("reserve bot %s: its claim changed while it was judged: not retired", shown(bot_id))
            return False
        log.info("reserve bot %s listed idle holds a claim of session %s that never landed (%s)",
                 shown(bot_id), shown(session_id), state.value)
        return True

    async def _swept_by_turn(self) -> None:
        """The deployment's sweep this period; its turn given back unless it went through."""
        whole = False
        try:
            whole = (await self._swept())[1]
        finally:
            if not whole:
                await self._sweep_turn.give_back()

    def _sweep_period(self) -> float:
        """SWEEP_SECONDS; SWEEP_OFF_SECONDS while the reserve is off and the last sweep listed no idle machine."""
        return SWEEP_SECONDS if self.settings.enabled or self._idle_listed else SWEEP_OFF_SECONDS

    def _sweep_horizon(self, machine: IdleMachine) -> float:
        """Created before this, an idle machine is stopped: a hot one past its idle age, a frozen one
        past its frozen age too (one this replica froze is left to the frozen tier's own rules)."""
        if self._frozen.knows(machine.bot_id):
            return 0.0
        lifetime = self.settings.max_idle_seconds
        if machine.frozen:
            lifetime = self._frozen.max_age(lifetime)
        return time.time() - lifetime - WARMING_GRACE_SECONDS

    def _credential(self, bot_id: str) -> str | None:
        """The channel credential of the reserve machine launched as `bot_id`, and of it alone."""
        credentials = self._channels.credentials
        if credentials is None:
            return None
        lifetime = (self._frozen.max_age(self.settings.max_idle_seconds) + self._max_session_seconds
                    + CREDENTIAL_SLACK_SECONDS)
        return credentials.issue("idle", bot_id, lifetime)

    async def aclose(self) -> None:
        await self._retirements.aclose()


class _HeldHere:
    """What this replica does, for another replica or the planner, with the bots it holds."""

    def __init__(self, reserve: Reserve, frozen: FrozenTier | NoFrozenTier, clock: Callable[[], float]) -> None:
        self._reserve = reserve
        self._frozen = frozen
        self._clock = clock

    async def claim(self, spec: LaunchSpec) -> LaunchResult | None:
        return await self._reserve.claim_here(spec)

    async def claim_returned(self, bot_id: str, spec: LaunchSpec) -> LaunchResult | None:
        return await self._frozen.claim_returned(bot_id, spec, self._clock())

    async def retire(self, bot_id: str) -> bool:
        return await self._reserve.retire_here(bot_id)

    def freeze(self, bot_id: str) -> bool:
        return self._frozen.freeze(bot_id)

    def resume(self, bot_id: str) -> bool:
        return self._frozen.resume(bot_id)

    def take_frozen(self, image: str, transport: str) -> TakenFrozen | None:
        return self._frozen.take_for_elsewhere(image, transport)

    def came_back_at(self, bot_id: str, replica: str) -> bool:
        return self._frozen.came_back_at(bot_id, replica)


@dataclass(frozen=True)
class RegionFigures:
    idle: int  # idle bots of the current image across the region's replicas
    warming: int  # reserve bots booting
    rate: float  # expected starts per second
    refill_seconds: float  # the lead the planner sizes over: how soon a bot lent is replaced


class NoWarmBot(Exception):
    """A warm-only launch found no idle bot to claim: nothing was launched."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"no warm bot for session {session_id}")


def _machine(bot_id: str) -> Callable[[BotLink], bool]:
    return lambda link: link.machine_id == bot_id


def _consume_exception(future: asyncio.Future[LaunchResult]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: nobody else may be waiting on it
