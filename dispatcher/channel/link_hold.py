"""One channel across the replicas for a bot that dials with its identity alone.

A Kubernetes pool bot has no credential: its pod's token is the proof, and a copy of that token
presents the same identity. One replica keeps one link per machine itself (dispatcher/channel/bots.py);
this keeps it one across the replicas, so a copy that dials another replica is never a second channel
that a session's claim is handed to there, idle or serving. The replica holding the channel holds the
store's `link:<machine id>` record (dispatcher/store/claims.py), renewed while the link is open, let go
when it closes; a replica that died frees it within `HOLD_SECONDS`, well inside the minute a pool bot
keeps dialling again.

The hello's hold is not forgiven when the store does not answer: the hello is refused, and the bot
dials again. A renewal that the store does not answer keeps the link (no other replica can take the
record meanwhile: their hellos are refused too); one that finds another replica's closes it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from dispatcher.observability.log_text import shown
from dispatcher.store.coordination import Claims
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.channel")

HOLD_SECONDS = 15.0  # the record's life without a renewal: how long a dead replica's hold outlives it
RENEW_EVERY_SECONDS = 5.0


class HeldLink(Protocol):
    @property
    def machine_id(self) -> str: ...

    @property
    def closed(self) -> asyncio.Event: ...

    async def disconnect(self) -> None: ...


class LinkHold:
    def __init__(self, claims: Claims) -> None:
        self._claims = claims

    async def refusal(self, machine_id: str) -> str | None:
        """Why `machine_id`'s hello is refused here (its channel is another replica's), or None: held here."""
        try:
            if await self._claims.hold_link(machine_id, HOLD_SECONDS):
                return None
        except StoreUnavailable:
            return "the replicas' store does not answer, so no replica can tell whether this bot is connected elsewhere"
        return "this machine's bot is connected at another replica"

    async def keep(self, link: HeldLink) -> None:
        """Renews the hold while `link` is open; closes it if another replica holds the machine's channel."""
        while not link.closed.is_set():
            try:
                await asyncio.wait_for(link.closed.wait(), RENEW_EVERY_SECONDS)
                return
            except TimeoutError:
                pass
            try:
                held = await self._claims.hold_link(link.machine_id, HOLD_SECONDS)
            except StoreUnavailable:
                continue
            if not held:
                log.warning("bot %s: its channel is held at another replica; this link is closed",
                            shown(link.machine_id))
                await link.disconnect()
                return

    async def let_go(self, machine_id: str) -> None:
        await self._claims.let_go_link(machine_id)
