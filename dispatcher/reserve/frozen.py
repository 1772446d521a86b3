"""The reserve's frozen tier: warm idle bots frozen by their provider, thawed by a claim.

Where the provider can freeze a machine (`FrozenMachines`: a suspended Fly Machine resumes in a
few hundred ms, billed for storage), the replica holding a bot the fleet plan freezes tells it
`freeze`, freezes its machine and keeps it in the pool as `frozen`. A start that finds no hot bot
claims the oldest frozen one (here or at its replica), records `thaw:<bot id>`, thaws it and waits
`THAW_DEADLINE_SECONDS` for its hello at whichever replica it dials; a bot not back in time is
retired and the start goes cold, so the frozen tier is never a new way to fail. The planner's
`resume` takes the same path back to hot. The whole round trip across replicas: docs/reserve.md
("The frozen tier") and docs/replicas.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Set
from typing import TypeVar

from botchannel.contract import METHOD_FREEZE
from dispatcher.channel.bots import BotChannels, BotLink, BotRequestFailed
from dispatcher.machines.base import FreezeFailed, FrozenMachines, LaunchResult, LaunchSpec, WarmMachines
from dispatcher.machines.bot_environment import session_assignment
from dispatcher.observability.log_text import shown
from dispatcher.outbound.provider_errors import ProviderError
from dispatcher.reserve.claim import REFUSED, Refused, WarmClaim
from dispatcher.reserve.elsewhere import ClaimsElsewhere, TakenFrozen
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
# The expectation outlives the thaw's deadline a little: spent by the bot's hello or by the deadline.
EXPECTED_BACK_SECONDS = THAW_DEADLINE_SECONDS + 5.0
# A thawed bot back at another replica waits there this long for its thawer's claim.
RETURNED_WAIT_SECONDS = 15.0
FOR_CLAIM, FOR_HOT = "claim", "hot"  # who waits for a thawed bot: a claim, or the hot tier
T = TypeVar("T")
Back = BotLink | str  # a thawed bot back on this channel, or the replica it dialled


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
        *,
        elsewhere: ClaimsElsewhere,
        replica_id: str,
        resumed: Callable[[float], None],  # a measured thaw (resume call → hello again), for the estimate
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
        self._elsewhere = elsewhere
        self._replica_id = replica_id
        self._resumed = resumed
        self._freezing: dict[str, str] = {}  # bot id → its image, while it is being frozen
        self._coming_back: dict[str, asyncio.Future[Back]] = {}  # thawed here, not yet on a channel
        self._resuming: dict[str, FrozenBot] = {}  # thawed for the hot tier, not yet on a channel
        self._returned: dict[str, tuple[BotLink, asyncio.Event]] = {}  # another's thaw, back here
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
        bots += [PoolBot(bot.bot_id, "resuming", epoch, bot.image, tuple(bot.capabilities))
                 for bot in self._resuming.values()]
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
        """The session's result from a thawed frozen bot held here (or one being resumed here), or
        None: launch cold."""
        image = self._warm_claim.image_of(spec)
        transport = session_assignment(spec).transport

        def fits(bot: FrozenBot) -> bool:
            return bot.image == image and transport in bot.capabilities

        while (bot := self._records.take_frozen(fits)) is not None:
            outcome = await self.thaw_for(bot.bot_id, bot.expires, spec, began)
            if outcome is not REFUSED:
                return outcome
        resuming = next((bot for bot in self._resuming.values() if fits(bot)), None)
        if resuming is not None:
            return await self._take_over(resuming.bot_id, spec, began)
        return None

    async def claim_elsewhere(self, spec: LaunchSpec, began: float) -> LaunchResult | None:
        """The session's result from a frozen bot held at another replica, thawed here, or None."""
        taken = await self._elsewhere.take_frozen(spec)
        if taken is None:
            return None
        outcome = await self.thaw_for(taken.bot_id, taken.expires, spec, began)
        return None if outcome is REFUSED else outcome

    def holds(self, image: str, transport: str) -> bool:
        """A frozen bot here (or being resumed here) could take a `transport` session."""
        return any(bot.image == image and transport in bot.capabilities
                   for bot in (*self._records.frozen(), *self._resuming.values()))

    def take_for_elsewhere(self, image: str, transport: str) -> TakenFrozen | None:
        """Another replica's start thaws one of the frozen bots held here: its record leaves now."""
        bot = self._records.take_frozen(lambda b: b.image == image and transport in b.capabilities)
        return None if bot is None else TakenFrozen(bot.bot_id, bot.expires)

    async def thaw_for(self, bot_id: str, expires: int | None, spec: LaunchSpec,
                       began: float) -> LaunchResult | None | Refused:
        """Claims the frozen bot `bot_id` for the session, thaws it, and has it assigned wherever it
        dials: the result, None (launch cold) or REFUSED (another session has it: try the next)."""
        if not await self._claims.claim(bot_id, spec.session_id, expires):
            return REFUSED  # another replica's session took it
        back = await self._thaw(bot_id, FOR_CLAIM)
        if back is None:
            return None  # one thaw's deadline spent: a cold launch now beats another thaw
        if isinstance(back, str):
            return await self._elsewhere.claim_returned(back, bot_id, spec)
        return await self._warm_claim.serve(back, spec, began)

    async def _take_over(self, bot_id: str, spec: LaunchSpec, began: float) -> LaunchResult | None:
        """Claims a bot being resumed here once it is back, on whichever replica's channel."""
        back = self._coming_back.get(bot_id)
        if back is None:
            return None
        try:
            where = await asyncio.shield(back)
        except Exception:  # its resume failed: it is retired already
            return None
        if isinstance(where, str):
            return await self._elsewhere.claim_returned(where, bot_id, spec)
        link = self._channels.take_idle(_the(where))
        if link is None:
            return None  # another start here took it first
        self._records.forget(bot_id)
        if not await self._claims.claim(bot_id, spec.session_id, link.expires):
            return None
        outcome = await self._warm_claim.serve(link, spec, began)
        return None if outcome is REFUSED else outcome

    async def claim_returned(self, bot_id: str, spec: LaunchSpec, began: float) -> LaunchResult | None:
        """The session its thawer (another replica) claims for the thawed bot `bot_id`, back on this
        channel: held aside since its hello (thawed for a claim), or idle here (resumed to hot)."""
        returned = self._returned.pop(bot_id, None)
        if returned is not None:
            link, claimed = returned
            claimed.set()
        else:
            taken = self._channels.take_idle(lambda candidate: candidate.machine_id == bot_id)
            if taken is None:
                return None  # a start here took it first: its thawer launches cold
            link = taken
            self._records.forget(bot_id)
        if not await self._claims.claim(bot_id, spec.session_id, link.expires):
            self._retirements.soon(link, "claim_refused")  # claimed for another session, not on its channel
            return None
        outcome = await self._warm_claim.serve(link, spec, began)
        return None if outcome is REFUSED else outcome

    # --- thawing --------------------------------------------------------------------------

    def resume(self, bot_id: str) -> bool:
        """The plan's resume of the frozen bot `bot_id` held here, back to hot; False if it is not."""
        bot = self._records.take_frozen(lambda candidate: candidate.bot_id == bot_id)
        if bot is None:
            return False
        self._resuming[bot_id] = bot
        self._retirements.spawn(self._resume(bot_id))
        return True

    async def _resume(self, bot_id: str) -> None:
        try:
            await self._thaw(bot_id, FOR_HOT)
        finally:
            self._resuming.pop(bot_id, None)

    async def _thaw(self, bot_id: str, waiter: str) -> Back | None:
        """Thaws `bot_id` and waits for it to dial a replica: where it is, or None (retired or back
        too late, and then not waited for)."""
        back: asyncio.Future[Back] = asyncio.get_running_loop().create_future()
        back.add_done_callback(_consume_exception)
        self._coming_back[bot_id] = back
        thawed_at = self._clock()
        try:
            await self._claims.expect_back(bot_id, f"{waiter}:{self._replica_id}", EXPECTED_BACK_SECONDS)
            async with asyncio.timeout(THAW_DEADLINE_SECONDS):
                await self._machines.thaw(bot_id)
                where = await asyncio.shield(back)  # a start taking over the resume waits on it too
        except FreezeFailed as exc:  # its provider destroyed it already
            log.warning("reserve bot %s failed to thaw (%s)", shown(bot_id), exc)
            self._metrics.retired("thaw_failed")
            await self._claims.welcome_back(bot_id)  # no hello of it is expected any more
            if not back.done():
                back.set_exception(exc)
            return None
        except (TimeoutError, ProviderError) as exc:
            # Spent here or by its hello: if its hello came first, the replica it dialled hears that
            # nobody waits for it now (and retires it, if it was thawed for a claim).
            if await self._claims.welcome_back(bot_id) is not None:
                log.warning("reserve bot %s did not come back from a thaw (%s)", shown(bot_id), type(exc).__name__)
                await self._retirements.retire(bot_id, "thaw_timeout")
            if not back.done():
                back.set_exception(TimeoutError())
            return None
        finally:
            self._coming_back.pop(bot_id, None)
        seconds = self._clock() - thawed_at
        self._metrics.thawed(seconds)
        self._resumed(seconds)
        return where

    def came_back(self, link: BotLink) -> bool:
        """An idle hello: True if it is a bot thawed for a claim, which takes it off the pool now
        (here, or held aside for its thawer at another replica); a bot resumed to hot stays."""
        waiter = self._channels.rules.thawed_for(link.machine_id)
        if waiter is None:
            return False
        kind, _, replica = waiter.partition(":")
        if replica != self._replica_id:
            return self._back_for_another(link, kind, replica)
        back = self._coming_back.get(link.machine_id)
        if kind == FOR_HOT:
            if back is not None and not back.done():
                back.set_result(link)
            return False  # hot here: the pool's
        taken = self._channels.take_idle(_the(link))
        if taken is None:
            return False
        if back is None or back.done():  # its claim gave up on it: it serves nothing now
            self._retirements.soon(taken, "thaw_timeout")
        else:
            back.set_result(taken)
        return True

    def _back_for_another(self, link: BotLink, kind: str, replica: str) -> bool:
        if kind == FOR_HOT:  # hot here; its resumer stops counting it as resuming
            self._retirements.spawn(self._tell(replica, link.machine_id))
            return False
        taken = self._channels.take_idle(_the(link))
        if taken is None:
            return False
        claimed = asyncio.Event()
        self._returned[taken.machine_id] = (taken, claimed)
        self._retirements.spawn(self._hand_back(taken, replica, claimed))
        return True

    async def _tell(self, replica: str, bot_id: str) -> None:
        await self._elsewhere.back(replica, bot_id)

    async def _hand_back(self, link: BotLink, replica: str, claimed: asyncio.Event) -> None:
        """Tells the thawing replica its bot is here and waits for its claim; retires the bot if the
        claim never comes (its start went cold)."""
        if await self._elsewhere.back(replica, link.machine_id):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(claimed.wait(), RETURNED_WAIT_SECONDS)
        if self._returned.get(link.machine_id, (None, None))[0] is link:
            del self._returned[link.machine_id]
            log.warning("reserve bot %s came back here for replica %s, which no longer waits; retiring it",
                        shown(link.machine_id), shown(replica))
            await self._retirements.retire(link.machine_id, "thaw_timeout", link)

    def came_back_at(self, bot_id: str, replica: str) -> bool:
        """The bot thawed here dialled `replica`: True if a claim or a resume here still waits for it."""
        back = self._coming_back.get(bot_id)
        if back is None or back.done():
            return False
        back.set_result(replica)
        return True

    # --- keeping it sized -----------------------------------------------------------------

    async def retire_stale(self, images: Set[str]) -> None:
        """Retires frozen bots of an image no release with traffic has (`images`: those that have) or
        past RESERVE_MAX_FROZEN_SECONDS, wherever planning is (the planner's surplus is its own
        plan's `retire_frozen`)."""
        now = self._clock()
        for bot in self._records.frozen():
            reason = ("old_image" if bot.image not in images else
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
        return (bot_id in self._freezing or bot_id in self._coming_back or bot_id in self._returned
                or bot_id in self._resuming or any(bot.bot_id == bot_id for bot in self._records.frozen()))

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


def _consume_exception(future: asyncio.Future[Back]) -> None:
    if not future.cancelled():
        future.exception()  # a start that took over the resume may not be waiting


class NoFrozenTier:
    """The provider cannot freeze a machine: every idle bot stays hot."""

    def freeze(self, bot_id: str) -> bool:
        return False

    def pool_bots(self, epoch: float, now: float) -> list[PoolBot]:
        return []

    async def claim(self, spec: LaunchSpec, began: float) -> LaunchResult | None:
        return None

    async def claim_elsewhere(self, spec: LaunchSpec, began: float) -> LaunchResult | None:
        return None

    def holds(self, image: str, transport: str) -> bool:
        return False

    def take_for_elsewhere(self, image: str, transport: str) -> TakenFrozen | None:
        return None

    async def claim_returned(self, bot_id: str, spec: LaunchSpec, began: float) -> LaunchResult | None:
        return None

    def resume(self, bot_id: str) -> bool:
        return False

    def came_back(self, link: BotLink) -> bool:
        return False

    def came_back_at(self, bot_id: str, replica: str) -> bool:
        return False

    async def retire_stale(self, images: Set[str]) -> None:
        return None

    async def retire(self, bot_id: str) -> bool:
        return False

    def knows(self, bot_id: str) -> bool:
        return False

    def account(self) -> None:
        return None

    def max_age(self, idle_seconds: float) -> float:
        return idle_seconds
