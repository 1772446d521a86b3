"""What may be used once across every replica: a phone call's one-time token, a carrier webhook's
sighting, a bot hello's machine identity proof.

Each replica remembers the tokens it has seen (dispatcher/phone/tokens.py); with several replicas
behind a load balancer, a captured token could otherwise open one more call at every other replica
within its lifetime. `SET NX` with the token's remaining life makes the first presentation anywhere
the only one that counts.
"""

from __future__ import annotations

import math

from dispatcher.store.client import Store


class SpentOnce:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def first_use(self, what: str, seconds: float) -> bool:
        """True the first time any replica presents `what` within `seconds` (raises
        `StoreUnavailable` when the store does not answer: the caller decides what that means)."""
        key = self._store.key("spent", what)
        ttl = max(1, math.ceil(seconds))
        return bool(await self._store.call(lambda: self._store.redis.set(key, "1", nx=True, ex=ttl)))
