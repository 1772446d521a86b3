"""Stopping reserve machines, now or in the background, and counting why.

A retired bot keeps no channel open here (its link is disconnected first); a provider that fails
to stop the machine leaves it to the sweep and the reaper, never to an exception in the caller.

A machine whose bot this replica does not hold (the sweep's, from a listing; a launch that never
said hello here) may be claimed at another replica while it is retired, and most providers cannot
make a delete conditional on the machine still being idle. The bot's claim record is the one step
both take: a claim records `claim:<bot id>` before it asks the bot (store/claims.py), so the
retirement records it first too (`taken_for_retirement`), first wins. Taken, every later claim of
the bot fails and moves on to another bot; taken by a session, the retirement leaves its machine.
With the store not answering, the replica holding the bot grants its own claims, so such a retirement
waits for the store (an idle machine kept a while longer, never a call's machine stopped).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from dispatcher.channel.bots import BotLink
from dispatcher.machines.base import WarmMachines
from dispatcher.outbound.provider_errors import ProviderError
from dispatcher.reserve.metrics import ReserveMetrics
from dispatcher.store.coordination import RETIRING as RETIRING
from dispatcher.store.coordination import Claims
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.reserve.reserve")


async def taken_for_retirement(claims: Claims, bot_id: str) -> bool | None:
    """Takes the bot's claim record for its retirement: True when it is the retirement's now (or was
    already: a retirement tried again), False when a session's claim took it first (its machine is
    that session's), None when the store does not answer (not retired now: asked again next time)."""
    try:
        return await claims.retiring(bot_id)
    except StoreUnavailable:
        log.info("reserve bot %s is held at another replica, and the store does not answer: retired once it "
                 "does", bot_id)
        return None


class Retirements:
    def __init__(self, machines: WarmMachines, metrics: ReserveMetrics) -> None:
        self._machines = machines
        self._metrics = metrics
        self._background: set[asyncio.Task[None]] = set()

    async def retire(self, bot_id: str, reason: str, link: BotLink | None = None) -> None:
        if link is not None:  # a retired bot keeps no channel open here
            await link.disconnect()
        try:
            await self._machines.retire(bot_id)
        except ProviderError as exc:
            log.warning("retiring reserve bot %s failed (%s); the reaper will", bot_id, exc)
            return
        self._metrics.retired(reason)
        log.info("reserve bot %s retired (%s)", bot_id, reason)

    def soon(self, bot: str | BotLink, reason: str) -> None:
        """Retires in the background (from a listener or a claim, which must not wait on the provider)."""
        if isinstance(bot, BotLink):
            self.spawn(self.retire(bot.machine_id, reason, bot))
        else:
            self.spawn(self.retire(bot, reason))

    def spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            await work

        task = asyncio.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def aclose(self) -> None:
        if self._background:
            await asyncio.wait(set(self._background), timeout=5)
