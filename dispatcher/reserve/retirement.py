"""Stopping reserve machines, now or in the background, and counting why.

A retired bot keeps no channel open here (its link is disconnected first); a provider that fails
to stop the machine leaves it to the sweep and the reaper, never to an exception in the caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from dispatcher.channel.bots import BotLink
from dispatcher.machines.base import WarmMachines
from dispatcher.outbound.provider_errors import ProviderError
from dispatcher.reserve.metrics import ReserveMetrics

log = logging.getLogger("dispatcher.reserve.reserve")


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
