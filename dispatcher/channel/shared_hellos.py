"""The store's side of the channel's hello rules (dispatcher/channel/admission.py), for replicas
sharing one: an idle credential's first hello anywhere, and the session a claim bound a reserve
bot to (dispatcher/store/claims.py).

These are read before the bot is welcomed (one store round trip, within `REDIS_TIMEOUT_SECONDS`),
and only for an idle hello or a reserve bot's re-dial. Each answer forgives an unreachable store by
falling back to what this replica saw itself, as without a store: an idle hello is then admitted
once here, and a claimed bot's re-dial only at the replica that bound it.
"""

from __future__ import annotations

import logging

from dispatcher.log_text import shown
from dispatcher.store.claims import BotClaims
from dispatcher.store.client import StoreUnavailable

log = logging.getLogger("dispatcher.channel.shared_hellos")


class StoreHellos:
    def __init__(self, claims: BotClaims) -> None:
        self._claims = claims

    async def first_idle_hello(self, bot_id: str, expires: int) -> bool:
        try:
            return await self._claims.admit_once(bot_id, expires)
        except StoreUnavailable:
            log.info("idle bot %s admitted on this replica's record alone (store unreachable)", shown(bot_id))
            return True

    async def claimed_for(self, bot_id: str) -> str | None:
        try:
            return await self._claims.claimed_for(bot_id)
        except StoreUnavailable:
            return None
