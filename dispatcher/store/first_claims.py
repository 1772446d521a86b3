"""Which region holds an `Idempotency-Key` this region is home to, recorded once across its replicas.

`SET NX GET` in one step: the first region recorded for a key stays its holder for as long as the
key may be replayed, whichever replica is asked and however many regions ask at once. A store
that does not answer raises: a start that cannot learn its key's holder is refused, never
started twice (docs/regions.md). `SET NX GET` needs Redis 7.0 or later (docs/replicas.md): an older
server's syntax error is named so.
"""

from __future__ import annotations

import math

from dispatcher.store.client import Store, StoreUnavailable
from dispatcher.store.leases import Leases


class StoreFirstClaims:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._leases = Leases(store)  # its compare-and-extend: a record is kept only for its holder

    async def first(self, what: str, value: str, seconds: float) -> str:
        key = self._store.key("home", what)
        ttl = max(1, math.ceil(seconds))
        try:
            earlier = await self._store.call(lambda: self._store.redis.set(key, value, nx=True, get=True, ex=ttl))
        except StoreUnavailable as exc:
            from redis.exceptions import ResponseError  # loaded: the store was called

            if isinstance(exc.__cause__, ResponseError) and "syntax" in str(exc.__cause__).lower():
                raise StoreUnavailable("the store refused `SET NX GET`, which needs Redis 7.0 or later (or Valkey): "
                                       "upgrade the server REDIS_URL names (docs/replicas.md)") from exc
            raise
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

    async def swap(self, what: str, value: str, new: str, seconds: float) -> bool:
        return await self._leases.swap(self._store.key("home", what), value, new, seconds)
