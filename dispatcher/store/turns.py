"""A turn for the deployment: the first replica to ask for `what` within its seconds has it, the others
not, until it runs out or its holder gives it back (dispatcher/machines/chore_turn.py, GET /status's
list of every machine).

Not a one-time token (dispatcher/store/spent.py's `ForgivingOnce`): a replica refused here keeps no
record of its own, so it may take the next turn as soon as the store has none. A store that does not
answer gives this replica a turn of its own memory (what one process does: `LocalTurns`).
"""

from __future__ import annotations

from dispatcher.store.client import Store
from dispatcher.store.memory import LocalOnce
from dispatcher.store.spent import SpentOnce
from dispatcher.store.unavailable import StoreUnavailable


class LocalTurns:
    def __init__(self) -> None:
        self._once = LocalOnce()

    async def take(self, what: str, seconds: float) -> bool:
        return await self._once.first_use(what, seconds)

    async def give_back(self, what: str) -> None:
        await self._once.release(what)


class StoreTurns:
    def __init__(self, store: Store) -> None:
        self._shared = SpentOnce(store)
        self._alone = LocalTurns()

    async def take(self, what: str, seconds: float) -> bool:
        try:
            return await self._shared.first_use(f"turn:{what}", seconds)
        except StoreUnavailable:
            return await self._alone.take(what, seconds)

    async def give_back(self, what: str) -> None:
        """Raises `StoreUnavailable` (the turn then runs out with its seconds)."""
        await self._alone.give_back(what)
        await self._shared.release(f"turn:{what}")
