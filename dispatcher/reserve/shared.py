"""The reserve's part in the replicas' shared store, each call forgiving an unreachable store.

- A claim is recorded before the bot is asked (`claim:<bot id>`): no idle bot is offered to two
  sessions. Store down: the bot's own one-assignment rule decides, as with one replica.
- An idle bot's hello is recorded (`hello:<bot id>`): its launcher, which may be another replica
  (a load balancer chose where it dialled), stops waiting for it instead of retiring it.
Without a store every claim is this replica's to make and nobody else launches its bots.
"""

from __future__ import annotations

import contextlib

from dispatcher.store.claims import BotClaims
from dispatcher.store.client import StoreUnavailable


class SharedPool:
    def __init__(self, claims: BotClaims | None) -> None:
        self._claims = claims

    async def claim(self, bot_id: str, session_id: str, until: int | None = None) -> bool:
        if self._claims is None:
            return True
        try:
            return await self._claims.claim(bot_id, session_id, until)
        except StoreUnavailable:
            return True

    @property
    def shared(self) -> bool:
        return self._claims is not None

    async def record_hello(self, bot_id: str) -> None:
        if self._claims is not None:
            with contextlib.suppress(StoreUnavailable):
                await self._claims.hello(bot_id)

    async def greeted(self, bot_ids: list[str]) -> set[str]:
        if self._claims is None or not bot_ids:
            return set()
        try:
            return await self._claims.greeted(bot_ids)
        except StoreUnavailable:
            return set()
