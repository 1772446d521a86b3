"""One launch per keyed session across replicas: the start lease.

A start with an `Idempotency-Key` has a session id every replica derives alike. Before looking
the session up at the provider and launching, a replica takes the lease `start:<session id>`;
another replica with the same key at the same moment waits until the first lets go, then finds
the session at the provider (a replay) instead of launching a second machine, warm or cold. The
holder renews the lease while it launches; a holder that dies frees it when it runs out, and the
waiter then launches under the provider's own idempotency (ECS clientToken, a Fly or GCE name),
which finishes or replays whatever the dead replica had begun.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from dispatcher.store.client import Store, StoreUnavailable
from dispatcher.store.leases import Leases

FIRST_POLL_SECONDS = 0.01  # a same-key retry usually arrives while the first launch is under way
MAX_POLL_SECONDS = 0.2


class StartBusy(Exception):
    """Another replica still launches this session after the caller's wait."""


class StartLeases:
    def __init__(
        self, store: Store, leases: Leases, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> None:
        self._store = store
        self._leases = leases
        self._seconds = store.settings.lease_seconds
        self._sleep = sleep  # how a waiter and the renewal wait: tests move time themselves

    @contextlib.asynccontextmanager
    async def held(self, session_id: str, wait_seconds: float) -> AsyncIterator[None]:
        """Holds the session's start lease for the block. Raises StartBusy after `wait_seconds`
        and StoreUnavailable when the store cannot say who launches."""
        key = self._store.key("start", session_id)
        token = f"{self._store.replica_id}:{secrets.token_hex(6)}"
        deadline = time.monotonic() + wait_seconds
        delay = FIRST_POLL_SECONDS
        while await self._leases.take(key, token, self._seconds) != token:
            if time.monotonic() + delay > deadline:
                raise StartBusy(session_id)
            await self._sleep(delay)
            delay = min(delay * 2, MAX_POLL_SECONDS)
        renewing = asyncio.create_task(self._renew(key, token), name=f"start-lease-{session_id}")
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(StoreUnavailable):
                await self._leases.release(key, token)  # else it runs out by itself

    async def _renew(self, key: str, token: str) -> None:
        while True:
            await self._sleep(self._seconds / 3)
            with contextlib.suppress(StoreUnavailable):
                await self._leases.renew(key, token, self._seconds)
