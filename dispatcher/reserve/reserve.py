"""The warm reserve: bots started ahead of demand, each claimed by exactly one session.

`launch(spec)` is what `POST /start` calls instead of the provider's launch: it claims an idle bot
of the current image on this replica's channel (dispatcher/reserve/claim.py: taken off the pool
synchronously, assigned the session over the channel, re-tagged by the provider). With no idle
bot, or any failure on the way, it launches cold as before: the reserve is never a new way to
fail. A claimed bot is an ordinary session machine afterwards: it exits with its session and its
machine is destroyed; nothing is ever returned to the pool.

`run()` keeps the reserve sized (dispatcher/reserve/policy.py, pacing.py): it launches
bots, retires those past their idle age, of an old image, surplus, or whose channel dropped.
docs/reserve.md has the why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import replace

from botchannel.contract import Report
from dispatcher.channel.bots import BotChannels, BotLink
from dispatcher.machines.base import LaunchResult, LaunchSpec, WarmMachines
from dispatcher.outbound.provider_errors import ProviderError
from dispatcher.reserve.backoff import FailedBots
from dispatcher.reserve.claim import WarmClaim
from dispatcher.reserve.idle import IdleRecords
from dispatcher.reserve.metrics import ReserveMetrics
from dispatcher.reserve.pacing import IdleBot, LaunchTokens, plan_reserve
from dispatcher.reserve.policy import ReserveSettings, reserve_size, utc_minute_of
from dispatcher.reserve.rates import ArrivalRate, ColdStartEstimate
from dispatcher.reserve.retirement import Retirements
from dispatcher.store.coordination import Claims

log = logging.getLogger("dispatcher.reserve.reserve")

TICK_SECONDS = 1.0
WARMING_GRACE_SECONDS = 60.0  # a launched bot not on the channel by cold start × 3 + this is retired
START_RECORD_SECONDS = 600.0  # how long a start waits for its bot's `ready` report to be timed
SWEEP_SECONDS = 30.0  # provider-wide idle sweep (a list call): rare, it only catches leftovers
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
        claims: Claims,  # each idle bot offered to one session, ever, across replicas
        tokens: LaunchTokens | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_session_seconds: int = 3600,
    ) -> None:
        self.settings = settings
        self._claims = claims
        self._draining = False
        self._machines = machines
        self._channels = channels
        self._metrics = metrics
        self._tokens = tokens
        self._clock = clock
        self._max_session_seconds = max_session_seconds  # how long a claimed bot's credential must last
        self._warming: dict[str, float] = {}  # bot id → launched at
        self.idle_records = IdleRecords()  # bot id → its idle hello, while it is in the pool
        self._arrivals = ArrivalRate(settings.rate_sample)
        self._cold_start = ColdStartEstimate(settings.cold_start_seconds)
        self._inflight: dict[str, asyncio.Future[LaunchResult]] = {}
        self._starts: dict[str, tuple[float, bool]] = {}  # session → (POST /start began, warm?)
        self._wake = asyncio.Event()
        self._retirements = Retirements(machines, metrics)
        self._claim = WarmClaim(machines, channels, self._claims, self.idle_records, self._retirements,
                                metrics, self._starts, lambda: self._clock())
        self._last_tick: float | None = None
        self.failed_bots = FailedBots()  # a broken bot file or image: back off, never loop
        channels.idle_listeners.append(self._on_idle_hello)
        channels.close_listeners.append(self._on_close)
        channels.report_listeners.append(self._on_report)

    # --- POST /start ----------------------------------------------------------------------

    async def launch(self, spec: LaunchSpec) -> LaunchResult:
        """A warm claim if an idle bot is there, else the provider's cold launch."""
        began = self._clock()
        self._arrivals.record(began)
        inflight = self._inflight.get(spec.session_id)
        if inflight is not None:  # the same key, concurrently, on this replica: one machine
            return replace(await asyncio.shield(inflight), created=False)
        result_future: asyncio.Future[LaunchResult] = asyncio.get_running_loop().create_future()
        result_future.add_done_callback(_consume_exception)
        self._inflight[spec.session_id] = result_future
        try:
            result = await self._claim.claim(spec, began)
            if result is None:
                self._metrics.claimed(warm=False)
                if self._tokens is not None:
                    self._tokens.spend(self._clock())
                self._starts[spec.session_id] = (began, False)
                result = await self._machines.launch(spec)
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

    # --- what the bots tell us ------------------------------------------------------------

    def _on_idle_hello(self, link: BotLink) -> None:
        now = self._clock()
        launched = self._warming.pop(link.machine_id, None)
        if launched is not None:
            self._cold_start.observe(now - launched)
        if self.failed_bots.in_a_row and link.hello.image == self._machines.bot_image:
            log.info("reserve: bot %s is up after %d failed bot(s); the backoff is over",
                     link.machine_id, self.failed_bots.in_a_row)
            self.failed_bots.healthy()
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
            self._bot_failed(report.detail or "the bot failed in its session")
            return
        if report.event != "ready":
            return
        started = self._starts.pop(report.session_id, None)
        if started is not None:
            began, warm = started
            self._metrics.ready_after(self._clock() - began, warm=warm)

    # --- keeping it sized -----------------------------------------------------------------

    async def run(self) -> None:
        """Sizes the reserve every tick and after every claim, hello and drop; sweeps old idle
        machines at the provider every SWEEP_SECONDS."""
        last_sweep = self._clock()
        while True:
            try:
                await self.refill()
                if self._clock() - last_sweep >= SWEEP_SECONDS:
                    last_sweep = self._clock()
                    await self.sweep()
            except Exception:
                log.exception("reserve refill failed; retrying at the next tick")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK_SECONDS)
            self._wake.clear()

    def drain(self) -> None:
        """This replica is shutting down: no new idle bot (the ones it has leave with their channel)."""
        self._draining = True

    async def refill(self) -> None:
        if self._draining:
            return
        now = self._clock()
        self._account(now)
        await self._drop_dead_warming(now)
        image = self._machines.bot_image
        links = self._channels.idle()
        since = self.idle_records.since((link.machine_id for link in links), now)
        idle = [IdleBot(link.machine_id, since[link.machine_id], link.hello.image) for link in links]
        size = reserve_size(
            self.settings,
            active=self._channels.session_count(),
            arrivals_per_second=self._arrivals.per_second(now),
            cold_start_seconds=self._cold_start.seconds,
            utc_minute=utc_minute_of(time.time()),
        )
        spare = self._tokens.spare(now) if self._tokens is not None else size.total
        plan = plan_reserve(idle, warming=len(self._warming), size=size, now=now, image=image,
                            settings=self.settings, cold_start_seconds=self._cold_start.seconds,
                            spare_launches=spare)
        launches = self.failed_bots.launches(now, plan.launch, warming=len(self._warming))
        for bot_id in plan.retire:
            link = self._channels.take_idle(_machine(bot_id))
            if link is not None:
                self.idle_records.forget(bot_id)
                reason = "old_image" if link.hello.image != image else "aged_or_surplus"
                await self._retirements.retire(bot_id, reason, link)
        for _ in range(launches):
            bot_id = f"rsv-{secrets.token_hex(6)}"
            self._warming[bot_id] = self._clock()
            if self._tokens is not None:
                self._tokens.spend(self._clock())
            try:
                await self._machines.launch_idle(bot_id, self._credential(bot_id))
            except ProviderError as exc:
                del self._warming[bot_id]
                log.warning("reserve launch failed (%s); retrying at the next tick", exc)
                break
        self._metrics.size(idle=len(self._channels.idle()), warming=len(self._warming))
        self._metrics.backoff(self.failed_bots.waiting_seconds(self._clock()), in_a_row=self.failed_bots.in_a_row)

    def _bot_failed(self, reason: str) -> None:
        self.failed_bots.failed(self._clock(), reason)
        self._metrics.failed_bot()
        log.warning("reserve: %d failed bot(s) in a row, next launch in %.0f s: %s", self.failed_bots.in_a_row,
                    self.failed_bots.waiting_seconds(self._clock()), reason)

    def health(self) -> str | None:
        """A line for /healthz while the reserve is backing off after failed bots; None otherwise."""
        failed = self.failed_bots
        if not failed.in_a_row:
            return None
        return (f"reserve backing off: {failed.in_a_row} failed bot(s) in a row, next launch in "
                f"{failed.waiting_seconds(self._clock()):.0f} s; last: {failed.last_reason}")

    def _account(self, now: float) -> None:
        """Adds the last interval's idle and warming machine-seconds (the reserve's cost)."""
        if self._last_tick is not None:
            elapsed = now - self._last_tick
            self._metrics.idle_time(idle_seconds=elapsed * len(self._channels.idle()),
                                    warming_seconds=elapsed * len(self._warming))
        self._last_tick = now
        horizon = now - START_RECORD_SECONDS
        for session_id, (began, _) in list(self._starts.items()):
            if began < horizon:
                del self._starts[session_id]

    async def _drop_dead_warming(self, now: float) -> None:
        # Only bots late for their hello are looked up: a provider's list is rate-limited (Fly: 1/s).
        late = {b for b, launched in self._warming.items() if now - launched > self._cold_start.seconds * 1.5}
        if not late:
            return
        for bot_id in await self._claims.greeted(sorted(late)):
            del self._warming[bot_id]  # it dialled another replica, which holds it now
            late.discard(bot_id)
        running = {machine.bot_id for machine in await self._machines.idle_machines()}
        deadline = self._cold_start.seconds * 3 + WARMING_GRACE_SECONDS
        for bot_id in late:
            if bot_id not in running or now - self._warming[bot_id] > deadline:
                del self._warming[bot_id]
                # Gone (or stuck) before its hello: its bot did not start. Why, where the provider knows.
                exited = self._machines.exit_detail(bot_id)
                self._bot_failed(f"reserve bot {bot_id} never connected" + (f": {exited}" if exited else ""))
                await self._retirements.retire(bot_id, "never_connected")

    async def sweep(self) -> int:
        """The reaper's part for reserve machines: any idle machine at the provider (this replica's
        or not, a dispatcher's that died) older than its idle age + grace is stopped, whether its
        channel is alive or gone. Returns how many were stopped."""
        horizon = time.time() - self.settings.max_idle_seconds - WARMING_GRACE_SECONDS
        stopped = 0
        for machine in await self._machines.idle_machines():
            if machine.created_at < horizon:
                link = self._channels.take_idle(_machine(machine.bot_id))
                self.idle_records.forget(machine.bot_id)
                reason = "reaped_idle_age" if link is None else "aged_or_surplus"
                await self._retirements.retire(machine.bot_id, reason, link)
                stopped += 1
        return stopped

    def _credential(self, bot_id: str) -> str | None:
        """The channel credential of the reserve machine launched as `bot_id`, and of it alone."""
        credentials = self._channels.credentials
        if credentials is None:
            return None
        lifetime = self.settings.max_idle_seconds + self._max_session_seconds + CREDENTIAL_SLACK_SECONDS
        return credentials.issue("idle", bot_id, lifetime)

    async def aclose(self) -> None:
        await self._retirements.aclose()


def _machine(bot_id: str) -> Callable[[BotLink], bool]:
    return lambda link: link.machine_id == bot_id


def _consume_exception(future: asyncio.Future[LaunchResult]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: nobody else may be waiting on it
