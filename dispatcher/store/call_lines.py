"""Phone calls across replicas: the store's side of the `CallMedia` contract.

The replica holding the carrier's socket records itself as the call's media replica, with the
digest of the bot's one-time media secret (dispatcher/store/call_media.py), renews the record while
the call lives, and listens on the call's line (dispatcher/store/media_bus.py) for the replica that
takes the bot's media socket, if another one does. A store that does not answer is forgiven
(dispatcher/store/forgiving.py): the call is then reached at this replica only, as in one process.
"""

from __future__ import annotations

import asyncio
import contextlib

from dispatcher.store.call_media import CallMediaRecords
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.coordination import CallHandle, CallMedia
from dispatcher.store.forgiving import forgiving
from dispatcher.store.media_bus import CallLine, MediaBus


class RedisCall:
    def __init__(self, records: CallMediaRecords, line: CallLine) -> None:
        self._records = records
        self._line = line
        self.hello = line.hello
        self._renewing = asyncio.create_task(self._renew(), name=f"call-record-{line.session_id}")

    def line(self) -> CallLine:
        return self._line

    def media_here(self) -> None:
        self._line.close("media_here")

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self._records.lease_seconds / 3)
            with contextlib.suppress(StoreUnavailable):  # renewed at the next beat, or run out
                await self._records.renew(self._line.session_id)

    async def end(self, reason: str) -> None:
        await self._line.finish(reason)  # the replica holding the bot's media socket, if any, hears it
        self._renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._renewing
        with contextlib.suppress(StoreUnavailable):  # it runs out one lease later
            await self._records.release(self._line.session_id)


class RedisCallMedia:
    def __init__(self, records: CallMediaRecords, bus: MediaBus, alone: CallMedia) -> None:
        self._records = records
        self._bus = bus
        self._alone = alone
        self.replica_id = bus.replica_id
        self.lease_seconds = records.lease_seconds

    async def open(self, session_id: str, secret: str) -> CallHandle:
        """Listening on the call's line before anyone can answer on it; raises nothing."""
        return await forgiving(lambda: self._open(session_id, secret), lambda: self._alone.open(session_id, secret),
                               f"phone call {session_id}'s media record")

    async def _open(self, session_id: str, secret: str) -> CallHandle:
        line = await self._bus.open(session_id)
        try:
            await self._records.record(session_id, secret)
        except StoreUnavailable:
            line.close()
            raise
        return RedisCall(self._records, line)

    async def spend(self, session_id: str, secret: str) -> str | None:
        return await forgiving(lambda: self._records.spend(session_id, secret),
                               lambda: self._alone.spend(session_id, secret), f"phone call {session_id}'s media secret")

    async def spend_here(self, session_id: str, secret: str) -> bool:
        async def spent_for_here() -> bool:
            return await self._records.spend(session_id, secret) == self.replica_id

        return await forgiving(spent_for_here, lambda: self._alone.spend_here(session_id, secret),
                               f"phone call {session_id}'s media secret")

    async def line_to(self, session_id: str, carrier_replica: str) -> CallLine:
        return await self._bus.open(session_id, peer=carrier_replica)
