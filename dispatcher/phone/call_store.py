"""What a phone call uses of the store when there are several replicas (`REDIS_URL`).

The replica holding the carrier's socket records itself as the call's media replica, with the
digest of the bot's one-time media secret, and renews the record while the call lives; it reaches
the call's bot through the owner relay when the bot's channel is at another replica; it hears from
the replica that took the bot's media socket, if another did, over the call's channel in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from dispatcher.store.call_media import CallMediaRecords, secret_digest
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.media_bus import CallLine, MediaBus

log = logging.getLogger("dispatcher.phone")


class OwnerRelay(Protocol):
    """dispatcher/channel/remote.py's `StoreRemote`: the answer of the replica holding the bot's channel."""

    async def ask(self, session_id: str, method: str, params: Mapping[str, Any]) -> Mapping[str, Any] | None: ...


@dataclass
class CallStore:
    records: CallMediaRecords
    bus: MediaBus
    owners: OwnerRelay

    @property
    def replica_id(self) -> str:
        return self.bus.replica_id

    @property
    def lease_seconds(self) -> float:
        return self.records.lease_seconds

    async def open(self, session_id: str, secret: str) -> tuple[CallLine, asyncio.Task[None]]:
        """The call's line here (listening before anyone can answer on it) and its record, renewed
        until the returned task is cancelled. Raises `StoreUnavailable`."""
        line = await self.bus.open(session_id)
        try:
            await self.records.record(session_id, secret_digest(secret))
        except StoreUnavailable:
            line.close()
            raise
        return line, asyncio.create_task(self._renew(session_id), name=f"call-record-{session_id}")

    async def _renew(self, session_id: str) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            with contextlib.suppress(StoreUnavailable):  # renewed at the next beat, or run out
                await self.records.renew(session_id)

    async def close(self, session_id: str, renewing: asyncio.Task[None]) -> None:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing
        with contextlib.suppress(StoreUnavailable):  # it runs out one lease later
            await self.records.release(session_id)

    async def spend(self, session_id: str, secret: str) -> str | None:
        """The call's carrier replica if `secret` opens its media socket (spent now at every
        replica), else None, also when the store does not answer."""
        try:
            return await self.records.spend(session_id, secret_digest(secret))
        except StoreUnavailable:
            log.warning("phone call %s: the store did not answer; its media secret cannot be checked", session_id)
            return None

    async def spend_here(self, session_id: str, secret: str) -> bool:
        """A secret this replica matched itself: spent in the store too, so no other replica takes
        it again. An unreachable store leaves this replica's own check (it spends it in memory)."""
        try:
            return await self.records.spend(session_id, secret_digest(secret)) == self.replica_id
        except StoreUnavailable:
            log.warning("phone call %s: the store did not answer; media secret checked here only", session_id)
            return True
