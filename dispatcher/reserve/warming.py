"""Reserve bots this replica launched that have not said hello yet, and those that never will.

A launched bot is warming until its idle hello, here or at another replica (a load balancer may
send it there: the store's hello record says so, and this replica stops counting it). One late
for its hello is looked up at the provider, in one list every RELIST_SECONDS at most (only those:
a provider's list is rate-limited, Fly 1/s per app for the whole deployment); one gone from a list
taken after it was late, or stuck past 3 × the cold start + WARMING_GRACE_SECONDS, is a failed bot,
unless its cell did not answer that list (`LosesCells`): then it is retired without counting a failure.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from dispatcher.machines.base import LosesCells, WarmMachines
from dispatcher.reserve.retirement import RETIRING, Retirements, taken_for_retirement
from dispatcher.store.coordination import Claims, PoolBot

WARMING_GRACE_SECONDS = 60.0  # a launched bot not on the channel by cold start × 3 + this is retired
# The provider's list of idle machines, asked for late bots at most this often: on Fly a list of
# every app is each app's whole list budget for a second (1/s, counted once for the deployment),
# and a burst's long-tailed cold starts keep a few bots late at almost every tick.
RELIST_SECONDS = 10.0


class Warming:
    def __init__(self, machines: WarmMachines, claims: Claims, retirements: Retirements,
                 failed: Callable[[str, str], None]) -> None:  # (the bot's image, why)
        self._machines = machines
        self._claims = claims
        self._retirements = retirements
        self._failed = failed
        self._launched: dict[str, float] = {}  # bot id → launched at (the reserve's clock)
        self._images: dict[str, str] = {}  # bot id → the image it will report (its release's)
        self._listed: set[str] = set()  # the provider's idle machines, as last listed…
        self._listed_at = -math.inf  # …then (the reserve's clock)

    def __len__(self) -> int:
        return len(self._launched)

    def launched(self, bot_id: str, now: float, image: str) -> None:
        self._launched[bot_id] = now
        self._images[bot_id] = image

    def of(self, image: str) -> int:
        """Bots of `image` warming: a backing-off image's probe among them holds its next one back."""
        return sum(1 for bot_id in self._launched if self._images.get(bot_id) == image)

    def forget(self, bot_id: str) -> float | None:
        """The bot said hello here, or its launch failed: when it was launched, if it was ours."""
        return self._launched.pop(bot_id, None)

    async def settle(self) -> None:
        """Stops counting the bots that said hello at another replica (a load balancer sent them
        there), one store read for all of them. Counted on until their hello was late, they made
        the deployment's reserve look fuller than it was: claimed at once there, each still counted
        warming here for 1.5 cold starts, and in a burst the planner held back launches for bots
        already serving sessions (the fleet emulator: a refill every ~6 s per slot instead of ~4)."""
        if self._launched:
            self._forget_greeted(await self._claims.greeted(list(self._launched)))

    def pool_bots(self, epoch: float, now: float) -> list[PoolBot]:
        """Each bot with its release's image, so the planner counts it for its release."""
        self._images = {b: image for b, image in self._images.items() if b in self._launched}
        return [PoolBot(bot_id, "warming", epoch - (now - at), self._images.get(bot_id, ""))
                for bot_id, at in self._launched.items()]

    async def drop_dead(self, now: float, cold_start: float) -> None:
        late = {b for b, launched in self._launched.items() if now - launched > cold_start * 1.5}
        if not late:
            return
        self._forget_greeted(await self._claims.greeted(sorted(late)))  # they dialled another replica
        late &= self._launched.keys()
        if not late:
            return
        late_at = cold_start * 1.5
        if now - self._listed_at >= RELIST_SECONDS:
            self._listed = {machine.bot_id for machine in await self._machines.idle_machines()}
            self._listed_at = now
        # Missing from a list taken after it was late, a bot's machine is gone (its create had landed
        # long before); one late since the last list waits for the next.
        judged = {b for b in late if (launched := self._launched.get(b)) is not None
                  and launched + late_at <= self._listed_at}
        running = self._listed | (late - judged)
        deadline = cold_start * 3 + WARMING_GRACE_SECONDS
        # Each await yields to the loop, and `_launched` changes meanwhile: a hello here takes a bot
        # off it (so every look-up below reads it afresh, never indexes it: an index raised
        # KeyError), and a bot may say hello at another replica and be claimed there while the
        # provider lists its machines (then it is no idle machine: it serves a session). So those
        # about to be retired are asked about again, and their claim record is taken for the
        # retirement first (retirement.py): a session's claim made before keeps its machine, one after fails.
        dead = [b for b in sorted(late)
                if (launched := self._launched.get(b)) is not None and (b not in running or now - launched > deadline)]
        if not dead:
            return
        self._forget_greeted(await self._claims.greeted(dead))
        for bot_id in dead:
            if bot_id not in self._launched:
                continue  # it said hello meanwhile: idle now, not dead
            taken = await taken_for_retirement(self._claims, bot_id)
            if taken is None:
                return  # the store does not answer: still warming here, judged again at a later tick
            if not taken:
                self._launched.pop(bot_id, None)  # claimed at another replica: its session's machine now
                continue
            if self._launched.pop(bot_id, None) is None:  # its hello here came during that write
                await self._claims.unclaim(bot_id, RETIRING)  # idle here, for a session to claim
                continue
            if isinstance(self._machines, LosesCells) and self._machines.in_lost_cell(bot_id):
                # Its cell did not answer: replaced elsewhere, no failure of its image. Still stopped (in
                # the background: the cell may be slow), since a stop needs no listing, only its ARN.
                self._retirements.soon(bot_id, "cell_unreadable")
                continue
            # Gone (or stuck) before its hello: its bot did not start. Why, where the provider knows.
            exited = self._machines.exit_detail(bot_id)
            why = f"reserve bot {bot_id} never connected" + (f": {exited}" if exited else "")
            self._failed(self._images.get(bot_id, ""), why)
            await self._retirements.retire(bot_id, "never_connected")

    def _forget_greeted(self, greeted: set[str]) -> None:
        for bot_id in greeted:
            self._launched.pop(bot_id, None)  # another replica holds it now
