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
from dispatcher.store.coordination import SeenOnce


class SpentOnce:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def first_use(self, what: str, seconds: float) -> bool:
        """True the first time any replica presents `what` within `seconds` (raises
        `StoreUnavailable` when the store does not answer: the caller decides what that means)."""
        key = self._store.key("spent", what)
        ttl = max(1, math.ceil(seconds))
        return bool(await self._store.call(lambda: self._store.redis.set(key, "1", nx=True, ex=ttl)))

    async def seen(self, what: str) -> bool:
        """Whether any replica presented `what` within its time; nothing is recorded (`StoreUnavailable` as
        `first_use`). A GET, not EXISTS: the store's user is granted no command the dispatcher can do without."""
        key = self._store.key("spent", what)
        return await self._store.call(lambda: self._store.redis.get(key)) is not None


class Remembered:
    """The store's record, then this replica's copy of it: used once if both say so. The store is
    asked first, so a store that does not answer (`StoreUnavailable`, raised through) leaves nothing
    here, and the carrier's retry of a refused webhook is not taken for a replay."""

    def __init__(self, shared: SpentOnce, here: SeenOnce) -> None:
        self._shared, self._here = shared, here

    async def first_use(self, what: str, seconds: float) -> bool:
        first_anywhere = await self._shared.first_use(what, seconds)
        first_here = await self._here.first_use(what, seconds)
        return first_anywhere and first_here

    async def seen(self, what: str) -> bool:
        """Spent if either record says so, as `first_use` refuses it then (the store asked first)."""
        return await self._shared.seen(what) or await self._here.seen(what)
