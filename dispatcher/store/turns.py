"""A turn for the deployment: the first replica to ask for `what` within its seconds has it, the others
not, until it runs out or its holder gives it back (dispatcher/machines/chore_turn.py, GET /status's
list of every machine).

Not a one-time token (dispatcher/store/spent.py's `ForgivingOnce`): a replica refused here keeps no
record of its own, so it may take the next turn as soon as the store has none. A store that does not
answer gives this replica a turn of its own memory (what one process would do), and one process
without a store has only that.
"""

from __future__ import annotations

from dispatcher.store.client import Store
from dispatcher.store.coordination import Coordination
from dispatcher.store.memory import LocalOnce
from dispatcher.store.spent import SpentOnce
from dispatcher.store.unavailable import StoreUnavailable


class Turns:
    def __init__(self, store: Store | None) -> None:
        self._shared = SpentOnce(store) if store is not None else None
        self._alone = LocalOnce()

    async def take(self, what: str, seconds: float) -> bool:
        if self._shared is not None:
            try:
                return await self._shared.first_use(f"turn:{what}", seconds)
            except StoreUnavailable:
                pass
        return await self._alone.first_use(what, seconds)

    async def give_back(self, what: str) -> None:
        """Raises `StoreUnavailable` (the turn then runs out with its seconds)."""
        await self._alone.release(what)
        if self._shared is not None:
            await self._shared.release(f"turn:{what}")


def deployment_turns(coordination: Coordination) -> Turns:
    """The store's turns with several replicas (`REDIS_URL`), this process's own without."""
    store = getattr(coordination, "store", None)
    return Turns(store if isinstance(store, Store) else None)
