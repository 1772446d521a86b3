"""A session's services' use as its bot last reported it during the call (botchannel/usage.py's `usage.so_far`), kept
so a bot killed before its `ended` report still has its use counted (dispatcher/usage/usage_count.py reads it when
the end carries none).

Each report is the whole sum so far: the newest replaces the one before (one key per session in the coordination
store, every replica's to read; one process: its memory), so a report repeated or lost counts nothing twice, and the
rollups add a session once. Its WebRTC transport (the relay's share: botchannel/transport_use.py) comes in the same
request and is kept the same way beside it. The key lives as long as a timeline does (a day). A bot's reports are
taken at most one a second: a looping bot costs the store no more. The session's timeline says once that its bot
reports as it goes (`usage_reported`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from botchannel.contract import RequestFailed
from botchannel.transport_use import parse_transport
from botchannel.usage import METHOD_USAGE_SO_FAR, UsageError, parse_usage
from dispatcher.channel.bots import BotChannels, BotLink
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.transport_so_far import TransportKeeping
from dispatcher.store.usage_so_far import REMEMBERED, SoFarKeeping

MIN_GAP_SECONDS = 1.0
Note = Callable[..., None]  # the timeline's `note`


class UsageSoFar:
    def __init__(self, keeping: SoFarKeeping, every_seconds: float, note: Note,
                 transport: TransportKeeping | None = None) -> None:
        self.keeping, self._every, self._note = keeping, every_seconds, note
        self.transport = transport  # its WebRTC transport so far, where the request carries one
        self._last: OrderedDict[str, float] = OrderedDict()  # session → its last report taken (monotonic)

    def follow(self, channels: BotChannels) -> None:
        channels.methods[METHOD_USAGE_SO_FAR] = self._reported

    async def _reported(self, link: BotLink, params: Mapping[str, Any]) -> Mapping[str, Any]:
        session_id = link.session_id
        assert session_id is not None  # the channel refuses a request from a bot without a session
        try:
            rows = parse_usage(params.get("usage"))
            transport = None if params.get("transport") is None else parse_transport(params["transport"])
        except UsageError as exc:
            raise RequestFailed(400, "invalid_usage", str(exc)) from None
        now = time.monotonic()
        last = self._last.get(session_id)
        if last is not None and now - last < MIN_GAP_SECONDS:
            raise RequestFailed(429, "too_often", f"at most one usage report a second; next in {self._every:g}s")
        self._last[session_id] = now
        self._last.move_to_end(session_id)
        while len(self._last) > REMEMBERED:
            self._last.popitem(last=False)
        try:
            await self.keeping.put(session_id, rows)
            if transport is not None and self.transport is not None:
                await self.transport.put(session_id, transport)
        except StoreUnavailable:
            raise RequestFailed(503, "store_unavailable", "the usage was not kept: send it again later") from None
        if last is None:
            self._note(session_id, "usage_reported")
        return {"every_seconds": self._every}
