"""The replicas that share a store, and whether each is serving or draining (LiveKit's node list).

Each replica writes `replica:<id>` = its state with a lease, renewed by its heartbeat: a replica
killed outright drops out one lease later, a draining one says so at once. Relaying to a replica
that is not in the list is not tried (its sessions' bots are re-dialling elsewhere).
"""

from __future__ import annotations

from typing import Literal

from dispatcher.store.client import Store

State = Literal["serving", "draining"]


class Replicas:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._ms = max(1, int(store.settings.lease_seconds * 1000))

    async def announce(self, state: State) -> None:
        key = self._store.key("replica", self._store.replica_id)
        await self._store.call(lambda: self._store.redis.set(key, state, px=self._ms))

    async def leave(self) -> None:
        key = self._store.key("replica", self._store.replica_id)
        await self._store.call(lambda: self._store.redis.delete(key))

    async def state_of(self, replica_id: str) -> State | None:
        value = await self._store.call(lambda: self._store.redis.get(self._store.key("replica", replica_id)))
        return _state(value)

    async def live(self) -> dict[str, State]:
        """Every replica whose lease has not run out (a SCAN: for /healthz and tests, not hot paths)."""

        async def scan() -> dict[str, State]:
            prefix = self._store.key("replica", "")
            found: dict[str, State] = {}
            async for key in self._store.redis.scan_iter(match=prefix + "*", count=100):
                state = _state(await self._store.redis.get(key))
                if state is not None:
                    found[key[len(prefix):]] = state
            return found

        return await self._store.call(scan)


def _state(value: object) -> State | None:
    if value == "serving":
        return "serving"
    return "draining" if value == "draining" else None
