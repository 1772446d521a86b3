"""What may be used once across every replica: a phone call's one-time token, a carrier webhook's
sighting, a bot hello's machine identity proof.

Each replica remembers the tokens it has seen (dispatcher/phone/tokens.py); with several replicas
behind a load balancer, a captured token could otherwise open one more call at every other replica
within its lifetime. `SET NX` with the token's remaining life makes the first presentation anywhere
the only one that counts.

Whoever may write to the store may also delete a record and re-open its replay. `Remembered` keeps
a copy in this replica's memory beside each record the store took, so a deleted record re-opens
nothing at the replica that saw the first use (docs/security.md, Known limits, says what remains).
"""

from __future__ import annotations

import math

from dispatcher.store.client import Store
from dispatcher.store.coordination import ReleasableOnce


class SpentOnce:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def first_use(self, what: str, seconds: float) -> bool:
        """True the first time any replica presents `what` within `seconds` (raises
        `StoreUnavailable` when the store does not answer: the caller decides what that means)."""
        key = self._store.key("spent", what)
        ttl = max(1, math.ceil(seconds * 1000))  # milliseconds: a turn held under its period stays under it
        return bool(await self._store.call(lambda: self._store.redis.set(key, "1", nx=True, px=ttl)))

    async def release(self, what: str) -> None:
        """Forgets `what`'s use at every replica (a DEL: the store's user has it already)."""
        key = self._store.key("spent", what)
        await self._store.call(lambda: self._store.redis.delete(key))


class Remembered:
    """The store's record, then this replica's copy of it: used once if both say so. The store is
    asked first, so a store that does not answer (`StoreUnavailable`, raised through) leaves nothing
    here, and the carrier's retry of a refused webhook is not taken for a replay."""

    def __init__(self, shared: SpentOnce, here: ReleasableOnce) -> None:
        self._shared, self._here = shared, here

    async def first_use(self, what: str, seconds: float) -> bool:
        # Kept here only when the store took it: a replica that lost the claim keeps no copy, so a claim given
        # back (`release`) counts again there too.
        return await self._shared.first_use(what, seconds) and await self._here.first_use(what, seconds)

    async def release(self, what: str) -> None:
        """The store's record first: one it did not forget (`StoreUnavailable`) is still spent here too."""
        await self._shared.release(what)
        await self._here.release(what)
