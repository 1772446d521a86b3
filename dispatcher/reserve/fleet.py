"""Planning the deployment's one reserve: done by the replica holding the planning lease.

Every replica publishes the reserve bots it holds and records each start it sees; the lease holder
feeds every replica's starts to the sizer, counts the deployment's bots once and turns them into
one plan within the refills' spare creates (reserve.py carries it out); the others only claim.
Creates are counted once for the deployment (machines/creates.py), cold launches first. The
sizer's state is saved in the store every `SAVE_EVERY_SECONDS` and at hand-over, so a restart
carries on with the forecast and the measured cold start; other replicas read it for their quotes
of a cold start's wait. One process (`LocalCoordination`) runs the same code with the lease always
held. docs/reserve.md ("The fleet planner").
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from dispatcher.machines.base import WarmMachines
from dispatcher.outbound.ratelimit import Rate
from dispatcher.reserve.neighbours import Neighbour
from dispatcher.reserve.planner import Fleet, FleetPlan, PlannerSettings, Tiers
from dispatcher.reserve.policy import ReserveSettings
from dispatcher.reserve.releases import DEFAULT_ONLY, WarmRelease
from dispatcher.reserve.sizer import FleetSizer
from dispatcher.reserve.wall import due
from dispatcher.store.coordination import Claims, Coordination, CreateLimit, CreateTurn, ReplicaPool, ReservePool

log = logging.getLogger("dispatcher.reserve.reserve")

SAVE_EVERY_SECONDS = 10.0
RELOAD_EVERY_SECONDS = 30.0  # a replica that does not plan refreshes its copy of the estimates
# A provider with no create limit of ours to keep (its reserve paces itself): refills are bounded
# by the plan alone.
UNPACED = Rate(per_second=1000.0, burst=1000)


@runtime_checkable
class CountsItsCreates(Protocol):
    """A provider that counts its create limit in the deployment's count itself (its cold launches
    there, dispatcher/machines/creates.py): the reserve's refills take their tokens from the same count."""

    creates: CreateLimit


@runtime_checkable
class RefillsByImage(Protocol):
    """A create limit whose refill token depends on the release launched (over cells: only a cell that
    can run its image takes it, dispatcher/machines/cell_refills.py)."""

    async def refill_for(self, image: str | None) -> CreateTurn: ...


def creates_of(machines: WarmMachines, coordination: Coordination) -> CreateLimit:
    """The provider's create limit as the deployment counts it: the one its cold launches take
    their tokens from where the provider counts them, else one per provider name for the refills."""
    if isinstance(machines, CountsItsCreates):
        return machines.creates
    rate = machines.create_rate or UNPACED
    return coordination.create_limit(machines.name, rate.per_second, rate.burst)


@dataclass(frozen=True, order=True)
class HotBot:
    since: float  # epoch seconds
    replica_id: str
    bot_id: str


@dataclass(frozen=True)
class Planned:
    plan: FleetPlan
    hot: list[HotBot]  # the deployment's idle bots of the release, oldest first
    frozen: list[HotBot]  # …and its frozen ones (where they are held), oldest first
    release: WarmRelease = DEFAULT_ONLY[0]  # whose bots these are, and what a launch starts


def warming_ids(views: list[ReplicaPool]) -> list[str]:
    """The bots the replicas' views count warming and none holds yet: those the store's claim
    records may show to have been taken since their launcher last published."""
    held = {b.bot_id for v in views for b in v.bots if b.state != "warming"}
    return sorted({b.bot_id for v in views for b in v.bots if b.state == "warming"} - held)


def count_fleet(views: list[ReplicaPool], image: str,
                claimed: Set[str] = frozenset()) -> tuple[list[HotBot], list[HotBot], Fleet]:
    """The deployment's reserve, each bot once: a bot that said hello at one replica while its
    launcher still counts it warming is counted where it said hello; one in `claimed` (a session took
    it since its launcher published) is not counted at all. A bot whose hello no view shows yet (it
    came after its replica published, in the very tick that plans) stays counted warming: it is
    ready, and not counting it launched a bot too many."""
    hot = sorted(HotBot(b.since, v.replica_id, b.bot_id) for v in views for b in v.bots
                 if b.state == "idle" and b.image == image)
    frozen = sorted(HotBot(b.since, v.replica_id, b.bot_id) for v in views for b in v.bots
                    if b.state == "frozen" and b.image == image)
    of_image = {b.bot_id for v in views for b in v.bots if b.image == image}  # a launcher says what it launched
    warming = len((set(warming_ids(views)) & of_image) - set(claimed))
    back = {b.bot_id for v in views for b in v.bots if b.state == "idle"}  # a resumed bot, hot at another replica
    resuming = len(({b.bot_id for v in views for b in v.bots if b.state == "resuming"} & of_image) - back)
    return hot, frozen, Fleet([b.since for b in hot], [b.since for b in frozen], warming=warming,
                              resuming=resuming, active=sum(v.sessions for v in views))


class FleetPlanning:
    def __init__(self, pool: ReservePool, claims: Claims, settings: ReserveSettings, planner: PlannerSettings,
                 tiers: Tiers, creates: CreateLimit) -> None:
        self._pool = pool
        self._claims = claims
        self._settings, self._planner, self._tiers = settings, planner, tiers
        self._creates = creates
        self._token_wait = 0.0  # what a cold launch would wait for its create, as last looked at
        self.sizer = FleetSizer(settings, planner, tiers)
        self.holding = False
        self._saved = -math.inf
        self._loaded = -math.inf
        self.region = ""  # with several regions: this one's name, and how it sees the others
        self.neighbours: Callable[[], Sequence[Neighbour]] = tuple

    def resize(self, settings: ReserveSettings) -> None:
        """Plans with `settings` from the next tick on (its forecast and measured starts kept)."""
        self._settings = settings
        self.sizer.settings = settings

    async def tick(self, epoch: float, releases: Sequence[tuple[WarmRelease, str]]) -> list[Planned] | None:
        """This tick's plan for the deployment, one per release with traffic (given with the image
        its idle bots report), or None when another replica plans."""
        limit = await self._creates.look()
        self._token_wait = limit.wait
        if not await self._pool.plan_lease():
            if self.holding:
                log.info("reserve: another replica plans the deployment's reserve now")
            self.holding = False
            if due(epoch, self._loaded, RELOAD_EVERY_SECONDS):
                await self._restore(epoch)
            return None
        if not self.holding:
            await self._restore(epoch)
            self.holding = True
            log.info("reserve: this replica plans the deployment's reserve")
        for at, _cold in await self._pool.arrivals():
            self.sizer.arrived(at)  # (a cold one took its create token itself)
        views = await self._pool.views()
        # A launcher counts its bot warming until its own next tick after the bot's hello elsewhere,
        # and its view is as old as that tick: a bot claimed at once where it dialled would be
        # counted a tick or two more (a burst's claims, every one a launch held back). The claim
        # records say it now, in one read.
        claimed = await self._claims.claimed_among(warming_ids(views))
        counted = [count_fleet(views, image, claimed) for _, image in releases]
        plans = self.sizer.plan_releases(epoch, [(release.share, fleet) for (release, _), (_, _, fleet)
                                                 in zip(releases, counted, strict=True)],
                                         limit.spare, region=self.region, neighbours=self.neighbours())
        if due(epoch, self._saved, SAVE_EVERY_SECONDS):
            await self._pool.save(self.sizer.to_dict())
            self._saved = epoch
        return [Planned(plan, hot, frozen, release)
                for plan, (hot, frozen, _), (release, _) in zip(plans, counted, releases, strict=True)]

    def seconds_until_token(self) -> float:
        """How long a cold launch asked for now waits for its turn under the provider's create limit
        (as this replica's last tick found it)."""
        return self._token_wait

    async def refill_token(self, image: str | None = None) -> bool:
        """A create token for one reserve launch of a release's `image` (None: the deployment's own), if
        one remains for a cold start afterwards (over cells: in one that can run it)."""
        if isinstance(self._creates, RefillsByImage):
            return (await self._creates.refill_for(image)).granted
        return (await self._creates.refill()).granted

    async def hand_over(self) -> None:
        """This replica drains: its state goes to the store and the lease to whoever ticks next."""
        if self.holding:
            await self._pool.save(self.sizer.to_dict())
            await self._pool.let_go()
            self.holding = False

    async def _restore(self, epoch: float) -> None:
        self._loaded = epoch
        state = await self._pool.load()
        if state is None:
            return
        try:
            self.sizer = FleetSizer.from_dict(state, self._settings, self._planner, self._tiers)
        except (ValueError, TypeError) as exc:
            log.warning("reserve: the planner's saved state is unreadable (%s); starting afresh", exc)
