"""Each replica's own running sessions where each replica's bots are its own processes (local mode
with several replicas, dispatcher/machines/local/shared.py): every replica publishes its list with a
lease every PUBLISH_SECONDS, and `GET /status` and `GET /releases` count the deployment's from the
lists whose lease runs, not only the replica asked. A replica that stops publishing drops out one
lease later. Every command is one the stack's store user already holds (SET, SCAN, MGET)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from dispatcher.store.client import Store

PUBLISH_SECONDS = 2.0
LEASE_SECONDS = 10.0  # five publishes: a loaded replica's late one does not drop its sessions from the count
MAX_LISTED = 10_000  # a list longer than any replica runs is not ours

Running = tuple[str, str | None, str]  # (session id, release or None, the machine's state)


class StoreLiveSessions:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._prefix = store.key("live-sessions", "")

    @property
    def replica_id(self) -> str:
        return self._store.replica_id

    async def publish(self, running: Iterable[Running]) -> None:
        """This replica's running sessions now. Raises `StoreUnavailable`."""
        value = json.dumps([list(r) for r in running], separators=(",", ":"))
        key = self._prefix + self._store.replica_id
        await self._store.call(lambda: self._store.redis.set(key, value, px=int(LEASE_SECONDS * 1000)))

    async def read(self) -> dict[str, list[Running]]:
        """Each replica's list whose lease runs, by replica id. Raises `StoreUnavailable`."""

        async def scan() -> dict[str, list[Running]]:
            keys = [key async for key in self._store.redis.scan_iter(match=self._prefix + "*", count=100)]
            values = await self._store.redis.mget(keys) if keys else []
            found: dict[str, list[Running]] = {}
            for key, value in zip(keys, values, strict=True):
                listed = _listed(value)
                if listed is not None:
                    name = key.decode() if isinstance(key, bytes) else str(key)
                    found[name[len(self._prefix):]] = listed
            return found

        return await self._store.call(scan)


def _listed(value: Any) -> list[Running] | None:
    """A published list, or None for a value that is not one (the store is written by others too)."""
    try:
        raw = json.loads(value) if value is not None else None
    except ValueError:
        return None
    if not isinstance(raw, list) or len(raw) > MAX_LISTED:
        return None
    running: list[Running] = []
    for item in raw:
        if (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)
                and (item[1] is None or isinstance(item[1], str)) and isinstance(item[2], str)):
            running.append((item[0], item[1], item[2]))
    return running
