"""A frozen bot's watch for its own resume: a dead channel is dropped at once, not after keepalive.

Between `freeze` and its machine's snapshot the bot still runs; after the resume its channel's
connection is dead (the dispatcher closed it while the machine was frozen, and a remote side that
closed drops the connection for good). The channel's ordinary keepalive would notice only after
its ping interval and timeout (~20 s), far longer than a claim waits. So while frozen the bot
pings every `PING_EVERY_SECONDS` with a short timeout, and treats a loop that woke far later than
it asked (the process was paused) as proof enough: either way the connection is dropped and the
bot dials again (bot/channel_session.py).
"""

from __future__ import annotations

import asyncio
import time

from loguru import logger

from bot.channel_client import BotChannel

PING_EVERY_SECONDS = 0.5
PING_TIMEOUT_SECONDS = 1.0
PAUSED_AFTER_SECONDS = 1.0  # a wake-up this much later than asked for: the process was paused


class FrozenWatch:
    def __init__(self, channel: BotChannel) -> None:
        self._channel = channel
        self._task = asyncio.create_task(self._watch(), name="bot-frozen-watch")

    async def _watch(self) -> None:
        while True:
            asked = time.monotonic()
            await asyncio.sleep(PING_EVERY_SECONDS)
            paused = time.monotonic() - asked - PING_EVERY_SECONDS > PAUSED_AFTER_SECONDS
            if paused or not await self._channel.ping(PING_TIMEOUT_SECONDS):
                logger.info("resumed from a freeze" if paused else "channel dead while frozen")
                self._channel.drop()
                return

    def stop(self) -> None:
        if not self._task.done() and asyncio.current_task() is not self._task:
            self._task.cancel()
