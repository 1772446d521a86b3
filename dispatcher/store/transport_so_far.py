"""Where a session's WebRTC transport, as its bot last reported it during the call (its `usage.so_far`
request's `transport`: botchannel/transport_use.py), is kept, so a bot killed before its `ended`
report still has its relayed bytes counted up to its last report: one key per session in the
coordination store, every replica's to read, or this process's memory, beside its services' use
(dispatcher/store/usage_so_far.py) and kept as long."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any, Protocol

from botchannel.transport_use import parse_transport
from botchannel.usage import UsageError
from dispatcher.store.client import Store
from dispatcher.store.leases import milliseconds
from dispatcher.store.usage_so_far import KEEP_SECONDS, REMEMBERED

Transport = dict[str, Any]


class TransportKeeping(Protocol):
    async def put(self, session_id: str, transport: Transport) -> None: ...
    async def get(self, session_id: str) -> Transport | None: ...


class StoreTransportSoFar:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def put(self, session_id: str, transport: Transport) -> None:
        key, body = self._store.key("usage", "transport-so-far", session_id), json.dumps(transport)
        await self._store.call(lambda: self._store.redis.set(key, body, px=milliseconds(KEEP_SECONDS)))

    async def get(self, session_id: str) -> Transport | None:
        key = self._store.key("usage", "transport-so-far", session_id)
        raw = await self._store.call(lambda: self._store.redis.get(key))
        if raw is None:
            return None
        try:  # checked again as a report is: the store is not the bot's to trust blindly
            return parse_transport(json.loads(raw.decode() if isinstance(raw, bytes) else str(raw)))
        except (ValueError, UsageError):
            return None


class MemoryTransportSoFar:
    def __init__(self) -> None:
        self._kept: OrderedDict[str, Transport] = OrderedDict()

    async def put(self, session_id: str, transport: Transport) -> None:
        self._kept[session_id] = transport
        self._kept.move_to_end(session_id)
        while len(self._kept) > REMEMBERED:
            self._kept.popitem(last=False)

    async def get(self, session_id: str) -> Transport | None:
        return self._kept.get(session_id)
