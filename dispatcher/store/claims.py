"""Idle bots offered once: `claim:<bot id>` is taken before a replica assigns a bot a session.

A bot's channel ends at one replica, which takes it from its pool in one synchronous step, and
the bot accepts one assignment ever; the claim record makes the rule explicit across replicas
(a bot that re-dialled and is idle at two replicas for an instant is still offered once) and
leaves a trace of which session took which bot.

`hello:<bot id>` records which replica an idle bot dialled: through a load balancer it may not be
the one that launched it, and the launcher then stops waiting for it instead of retiring it as
never connected.
"""

from __future__ import annotations

from dispatcher.store.client import Store

CLAIM_SECONDS = 24 * 3600  # longer than any session; a claimed bot never becomes idle again
HELLO_SECONDS = 3600  # longer than a bot waits for its hello to be noticed


class BotClaims:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def claim(self, bot_id: str, session_id: str) -> bool:
        """True if this call claimed the bot for `session_id` (or had already)."""
        key = self._store.key("claim", bot_id)

        async def take() -> bool:
            if await self._store.redis.set(key, session_id, nx=True, ex=CLAIM_SECONDS):
                return True
            return bool(await self._store.redis.get(key) == session_id)  # our own, retried

        return await self._store.call(take)

    async def hello(self, bot_id: str) -> None:
        key = self._store.key("hello", bot_id)
        await self._store.call(lambda: self._store.redis.set(key, self._store.replica_id, ex=HELLO_SECONDS))

    async def greeted(self, bot_ids: list[str]) -> set[str]:
        """Those of `bot_ids` that said hello at some replica."""
        if not bot_ids:
            return set()
        keys = [self._store.key("hello", bot_id) for bot_id in bot_ids]
        found = await self._store.call(lambda: self._store.redis.mget(keys))
        return {bot_id for bot_id, replica in zip(bot_ids, found, strict=True) if replica is not None}
