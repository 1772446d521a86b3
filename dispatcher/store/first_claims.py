"""Which region holds an `Idempotency-Key` this region is home to, recorded once across its replicas.

`SET NX GET` in one step: the first region recorded for a key stays its holder for as long as the
key may be replayed, whichever replica is asked and however many regions ask at once. A store
that does not answer raises: a start that cannot learn its key's holder is refused, never
started twice (docs/regions.md).
"""

from __future__ import annotations

import math

from dispatcher.store.client import Store
from dispatcher.store.leases import Leases


class StoreFirstClaims:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._leases = Leases(store)  # its compare-and-extend: a record is kept only for its holder

    async def first(self, what: str, value: str, seconds: float) -> str:
        key = self._store.key("home", what)
        ttl = max(1, math.ceil(seconds))
        earlier = await self._store.call(lambda: self._store.redis.set(key, value, nx=True, get=True, ex=ttl))
        if earlier is None:
            return value
        return earlier.decode() if isinstance(earlier, bytes) else str(earlier)

    async def held(self, what: str) -> str | None:
        found = await self._store.call(lambda: self._store.redis.get(self._store.key("home", what)))
        return found.decode() if isinstance(found, bytes) else found

    async def keep(self, what: str, value: str, seconds: float) -> bool:
        return await self._leases.renew(self._store.key("home", what), value, seconds)

    async def let_go(self, what: str, value: str) -> None:
        await self._leases.release(self._store.key("home", what), value)
