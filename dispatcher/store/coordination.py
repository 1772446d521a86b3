"""Everything one replica keeps in the store, built from one connection, and its heartbeat.

The heartbeat (every third of a lease) tells the other replicas this one is serving or draining
and renews the owner records of the sessions whose bots hold a channel here; a record that ran out
while the store was unreachable is written again. The heartbeat is also how an outage is noticed
and its end: `/healthz` shows the store's health as the last call found it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from dispatcher.store.call_media import CallMediaRecords
from dispatcher.store.claims import BotClaims
from dispatcher.store.client import Store, StoreSettings, StoreUnavailable
from dispatcher.store.leases import Leases
from dispatcher.store.media_bus import MediaBus
from dispatcher.store.owners import Owners
from dispatcher.store.rates import SharedRate
from dispatcher.store.relay import Handler, NotHere, Relay
from dispatcher.store.replicas import Replicas, State
from dispatcher.store.spent import SpentOnce
from dispatcher.store.starts import StartLeases

log = logging.getLogger("dispatcher.store")


class Coordination:
    def __init__(self, settings: StoreSettings, *, store: Store | None = None) -> None:
        self.store = store or Store(settings)
        self.replica_id = self.store.replica_id
        leases = Leases(self.store)
        self.starts = StartLeases(self.store, leases)
        self.owners = Owners(self.store, leases)
        self.replicas = Replicas(self.store)
        self.claims = BotClaims(self.store)
        self.spent = SpentOnce(self.store)
        self.calls = CallMediaRecords(self.store)  # phone calls whose two sockets are at two replicas
        self.media = MediaBus(self.store)
        self.relay: Relay | None = None
        self.state: State = "serving"
        self._held: Callable[[], Iterable[str]] = tuple
        self._beating: asyncio.Task[None] | None = None

    async def ask_owner(
        self, session_id: str, method: str, params: Mapping[str, Any], timeout: float
    ) -> Mapping[str, Any] | None:
        """The answer of the replica holding `session_id`'s bot; None when no other replica holds
        it (or the one named no longer does). Raises `StoreUnavailable`, or `TimeoutError` when the
        owner does not answer: each caller says what that means to its own client."""
        owner = await self.owners.owner_of(session_id)
        if owner is None or owner == self.replica_id or self.relay is None:
            return None
        try:
            return await self.relay.ask(owner, session_id, method, params, timeout)
        except NotHere:
            return None

    def shared_rate(self, per_second: float, burst: int) -> SharedRate:
        return SharedRate(self.store, per_second, burst)

    async def start(self, handler: Handler, held: Callable[[], Iterable[str]]) -> None:
        """Subscribes to this replica's relay channel and starts the heartbeat. `handler` answers
        relayed requests from the local channel; `held()` names the sessions whose bots are here."""
        self._held = held
        self.relay = Relay(self.store, handler)
        await self.relay.start()
        await self.beat()
        self._beating = asyncio.create_task(self._run(), name="store-heartbeat")

    async def beat(self) -> None:
        """One heartbeat; never raises (an unreachable store is recorded in its health)."""
        with contextlib.suppress(StoreUnavailable):
            await self.replicas.announce(self.state)
            held = list(self._held())
            for session_id in await self.owners.renew(held):
                await self.owners.reclaim(session_id)  # ran out during an outage, still here

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.store.settings.lease_seconds / 3)
            try:
                await self.beat()
            except Exception:
                log.exception("store heartbeat failed")

    async def drain(self) -> None:
        """Tells the other replicas this one takes no new work (its heartbeat keeps saying so)."""
        self.state = "draining"
        await self.beat()

    def health(self) -> dict[str, Any]:
        return {**self.store.health.as_json(), "replica": self.replica_id, "state": self.state}

    async def aclose(self) -> None:
        if self._beating is not None:
            self._beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beating
        if self.relay is not None:
            await self.relay.aclose()
        await self.media.aclose()
        with contextlib.suppress(StoreUnavailable):
            await self.replicas.leave()
        await self.store.aclose()
