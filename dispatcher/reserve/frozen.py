"""The reserve's frozen tier: warm idle bots frozen by their provider, thawed by a claim.

Where the provider can freeze a machine (`FrozenMachines`: a suspended Fly Machine keeps its
process and resumes in a few hundred ms, billed for storage, not CPU), idle bots beyond the hot
ones are frozen once warm. How many stay hot and how many are frozen is the fleet planner's plan
for the deployment (dispatcher/reserve/planner.py: hot are `RESERVE_MIN_HOT`, or more when starts
arrive fast enough to claim a bot within a freeze's round trip); the replica holding a bot the
plan freezes freezes it (`freeze`), and publishes its frozen bots in the deployment's pool in
state `frozen`. Once warm means after its idle hello: the bot is told
`freeze` over its channel (it stops its idle clock and will dial again), its machine is frozen,
and its channel closed. It stays in the pool as a record in state `frozen`
(dispatcher/reserve/idle.py), counted in the reserve's size, off the channel.

A start that finds no hot bot takes the oldest frozen record that fits (synchronously, then
claimed across replicas: the claims contract, as a hot bot is), thaws its machine, waits for the
bot to dial again (its idle hello, admitted once more: dispatcher/channel/admission.py) within
`THAW_DEADLINE_SECONDS`, and assigns the session as to any hot bot (dispatcher/reserve/claim.py).
A bot that does not come back in time is retired and the start launches cold: the frozen tier is
never a new way to fail. Frozen bots are retired past `RESERVE_MAX_FROZEN_SECONDS`, of an old
image, or as the plan's surplus (`retire`), and a bot that fails to freeze is retired by its
provider.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from botchannel.contract import METHOD_FREEZE
from dispatcher.channel.bots import BotChannels, BotLink, BotRequestFailed
from dispatcher.log_text import shown
from dispatcher.machines.base import FreezeFailed, FrozenMachines, LaunchResult, LaunchSpec, WarmMachines
from dispatcher.machines.bot_environment import session_assignment
from dispatcher.outbound.provider_errors import ProviderError
from dispatcher.reserve.claim import REFUSED, WarmClaim
from dispatcher.reserve.idle import FrozenBot, IdleRecords
from dispatcher.reserve.metrics import ReserveMetrics
from dispatcher.reserve.planner import PlannerSettings, Tiers
from dispatcher.reserve.retirement import Retirements
from dispatcher.store.coordination import Claims, PoolBot

log = logging.getLogger("dispatcher.reserve.frozen")

FREEZE_ASK_SECONDS = 2.0  # an idle bot answers `freeze` in milliseconds
# A thaw (Fly: a resume of a few hundred ms, its `/wait` bounded by the provider) and the bot's
# re-dial; past this the start is launched cold instead.
THAW_DEADLINE_SECONDS = 5.0
# A suspend (Fly: about a second), during which the bot can be claimed by nobody: with the
# provider's resume and a planner's tick, the round trip the planner keeps hot bots for.
SUSPEND_SECONDS = 1.0
T = TypeVar("T")


def tiers_of(machines: WarmMachines) -> Tiers:
    """What the provider offers the fleet planner: a frozen tier where it can freeze a machine."""
    rate = machines.create_rate
    create_per_second = rate.per_second if rate is not None else 1000.0
    if isinstance(machines, FrozenMachines):
        return Tiers(frozen=True, resume_seconds=machines.frozen_form.resume_seconds,
                     create_per_second=create_per_second, suspend_seconds=SUSPEND_SECONDS)
    return Tiers(frozen=False, resume_seconds=0.0, create_per_second=create_per_second)


class FrozenTier:
    def __init__(
        self,
        machines: FrozenMachines,
        channels: BotChannels,
        claims: Claims,
        records: IdleRecords,
        retirements: Retirements,
        metrics: ReserveMetrics,
        warm_claim: WarmClaim,
        settings: PlannerSettings,
        clock: Callable[[], float],
    ) -> None:
        self._machines = machines
        self._channels = channels
        self._claims = claims
        self._records = records
        self._retirements = retirements
        self._metrics = metrics
        self._warm_claim = warm_claim
        self.settings = settings
        self._clock = clock
        self._freezing: dict[str, str] = {}  # bot id → its image, while it is being frozen
        self._coming_back: dict[str, asyncio.Future[BotLink]] = {}  # thawed for a claim, not yet on the channel
        self._last_account: float | None = None
        form = machines.frozen_form
        metrics.tier_prices(hot=form.running_dollars_per_month, frozen=form.frozen_dollars_per_month)

    # --- freezing -------------------------------------------------------------------------

    def freeze(self, bot_id: str) -> bool:
        """Freezes the hot bot `bot_id` held here, as the fleet planner's plan says; False if it is
        no longer hot here (a claim took it first)."""
        taken = self._channels.take_idle(lambda link: link.machine_id == bot_id)
        if taken is None:
            return False
        self._records.forget(bot_id)
        self._freezing[bot_id] = taken.hello.image
        self._retirements.spawn(self._freeze(taken))
        return True

    def pool_bots(self, epoch: float, now: float) -> list[PoolBot]:
        """Its bots as the deployment's pool counts them: frozen, and being frozen (counted frozen
        already, so the planner does not freeze another in its place)."""
        bots = [PoolBot(bot.bot_id, "frozen", epoch - (now - bot.since), bot.image, tuple(bot.capabilities))
                for bot in self._records.frozen()]
        return bots + [PoolBot(bot_id, "frozen", epoch, image) for bot_id, image in self._freezing.items()]

    async def _freeze(self, link: BotLink) -> None:
        bot_id = link.machine_id
        try:
            await link.request(METHOD_FREEZE, {}, timeout=FREEZE_ASK_SECONDS)
            await self._machines.freeze(bot_id)
        except BotRequestFailed as exc:
            log.warning("reserve bot %s would not be frozen (%s); retiring it", shown(bot_id), exc.code)
            await self._retirements.retire(bot_id, "freeze_refused", link)
            return
        except FreezeFailed as exc:  # its provider destroyed it already
            log.warning("reserve bot %s failed to freeze (%s)", shown(bot_id), exc)
            self._metrics.retired("freeze_failed")
            await link.disconnect()
            return
        finally:
            self._freezing.pop(bot_id, None)
        self._records.froze(FrozenBot(bot_id, self._clock(), link.hello.image, link.hello.capabilities,
                                      link.expires))
        await link.disconnect()  # the frozen bot finds its channel closed when it resumes
        log.info("reserve bot %s frozen (%s)", shown(bot_id), self._machines.frozen_form.name)

    # --- claiming -------------------------------------------------------------------------

    async def claim(self, spec: LaunchSpec, began: float) -> LaunchResult | None:
        """The session's result from a thawed frozen bot, or None: launch cold."""
        image = self._machines.bot_image
        transport = session_assignment(spec).transport

        def fits(bot: FrozenBot) -> bool:
            return bot.image == image and transport in bot.capabilities

        while (bot := self._records.take_frozen(fits)) is not None:
            if not await self._claims.claim(bot.bot_id, spec.session_id, bot.expires):
                continue  # another replica's session took it
            link = await self._thaw(bot.bot_id)
            if link is None:
                return None  # one thaw's deadline spent: a cold launch now beats another thaw
            outcome = await self._warm_claim.serve(link, spec, began)
            if outcome is not REFUSED:
                return outcome
        return None

    async def _thaw(self, bot_id: str) -> BotLink | None:
        back: asyncio.Future[BotLink] = asyncio.get_running_loop().create_future()
        self._coming_back[bot_id] = back
        self._channels.rules.expect_back(bot_id)
        thawed_at = self._clock()
        try:
            async with asyncio.timeout(THAW_DEADLINE_SECONDS):
                await self._machines.thaw(bot_id)
                link = await back
        except FreezeFailed as exc:  # its provider destroyed it already
            log.warning("reserve bot %s failed to thaw (%s); launching cold", shown(bot_id), exc)
            self._metrics.retired("thaw_failed")
            return None
        except (TimeoutError, ProviderError) as exc:
            log.warning("reserve bot %s did not come back from a thaw (%s); launching cold", shown(bot_id),
                        type(exc).__name__)
            await self._retirements.retire(bot_id, "thaw_timeout")
            return None
        finally:
            self._coming_back.pop(bot_id, None)
            self._channels.rules.not_expected(bot_id)
        self._metrics.thawed(self._clock() - thawed_at)
        return link

    def came_back(self, link: BotLink) -> bool:
        """An idle hello: True if it is a bot thawed for a claim, which takes it off the pool now."""
        back = self._coming_back.get(link.machine_id)
        if back is None or back.done():
            return False
        taken = self._channels.take_idle(_the(link))
        if taken is None:
            return False
        back.set_result(taken)
        return True

    # --- keeping it sized -----------------------------------------------------------------

    async def retire_stale(self, image: str) -> None:
        """Retires frozen bots of another image or past RESERVE_MAX_FROZEN_SECONDS, wherever planning
        is (the planner's surplus is its own plan's `retire_frozen`)."""
        now = self._clock()
        for bot in self._records.frozen():
            reason = ("old_image" if bot.image != image else
                      "frozen_age" if now - bot.since >= self.settings.max_frozen_seconds else None)
            if reason is not None and self._records.take_frozen(_the(bot)) is not None:
                await self._retirements.retire(bot.bot_id, reason)

    async def retire(self, bot_id: str) -> bool:
        """Retires the frozen bot `bot_id` held here (the planner's surplus); False if it is not."""
        bot = self._records.take_frozen(lambda candidate: candidate.bot_id == bot_id)
        if bot is None:
            return False
        await self._retirements.retire(bot_id, "surplus")
        return True

    def max_age(self, idle_seconds: float) -> float:
        """The longest a reserve bot waits before a claim: hot, then frozen (its credential lasts as long)."""
        return idle_seconds + self.settings.max_frozen_seconds

    def knows(self, bot_id: str) -> bool:
        """A bot this replica froze (the sweep leaves it to this tier's own rules)."""
        return bot_id in self._freezing or bot_id in self._coming_back or any(
            bot.bot_id == bot_id for bot in self._records.frozen())

    def account(self) -> None:
        """Each tier's size and its cost a month, and the frozen machine-seconds since the last call."""
        now = time.monotonic()
        if self._last_account is not None:
            self._metrics.frozen_time(len(self._records.frozen()) * (now - self._last_account))
        self._last_account = now
        self._metrics.tiers(hot=len(self._channels.idle()), frozen=len(self._records.frozen()),
                            freezing=len(self._freezing))


def _the(one: T) -> Callable[[T], bool]:
    return lambda candidate: candidate is one


class NoFrozenTier:
    """The provider cannot freeze a machine: every idle bot stays hot."""

    def freeze(self, bot_id: str) -> bool:
        return False

    def pool_bots(self, epoch: float, now: float) -> list[PoolBot]:
        return []

    async def claim(self, spec: LaunchSpec, began: float) -> LaunchResult | None:
        return None

    def came_back(self, link: BotLink) -> bool:
        return False

    async def retire_stale(self, image: str) -> None:
        return None

    async def retire(self, bot_id: str) -> bool:
        return False

    def knows(self, bot_id: str) -> bool:
        return False

    def account(self) -> None:
        return None

    def max_age(self, idle_seconds: float) -> float:
        return idle_seconds
