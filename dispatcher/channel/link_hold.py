"""One channel across the replicas for a bot that dials with its identity alone.

A Kubernetes pool bot has no credential: its pod's token is the proof, and a copy of that token
presents the same identity. One replica keeps one link per machine itself (dispatcher/channel/bots.py);
this keeps it one across the replicas, so a copy that dials another replica is never a second channel
that a session's claim is handed to there, idle or serving. The replica holding the channel holds the
store's `link:<machine id>` record (dispatcher/store/claims.py), renewed while the link is open, let go
when it closes; a replica that died frees it within `HOLD_SECONDS`, inside the minute a pool bot
keeps dialling again.

The hello's hold is not forgiven when the store does not answer: the hello is refused, and the bot
dials again. A link is kept while its bot answers a ping and its hold is renewed; one whose hold has
gone unrenewed for a while is closed before the record can lapse (a replica cut off from the store
alone must not keep a link another replica may now admit), and a session is handed to a pool bot's
link only after its hold is renewed (dispatcher/machines/k8s/handover.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from dispatcher.observability.log_text import shown
from dispatcher.store.coordination import Claims
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.channel")

HOLD_SECONDS = 20.0  # the record's life without a renewal: how long a dead replica's hold outlives it
RENEW_EVERY_SECONDS = 5.0
PING_SECONDS = 5.0  # how long the bot has to answer before its link is taken for a drop
# A link whose hold could not be renewed for this long is closed before the record can lapse (and be
# taken at another replica): checked after each pause, so a pause and a store call fit in the rest.
UNRENEWED_LIMIT_SECONDS = HOLD_SECONDS - RENEW_EVERY_SECONDS - PING_SECONDS
HELD_ELSEWHERE = "this machine's bot is connected at another replica"


class HeldLink(Protocol):
    @property
    def machine_id(self) -> str: ...

    @property
    def closed(self) -> asyncio.Event: ...

    async def answers(self, timeout: float) -> bool: ...

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
        return HELD_ELSEWHERE

    async def confirmed(self, machine_id: str) -> bool:
        """Whether this replica still holds `machine_id`'s channel, renewed now (before a session is handed to it)."""
        try:
            return await self._claims.hold_link(machine_id, HOLD_SECONDS)
        except StoreUnavailable:
            return False

    async def keep(self, link: HeldLink) -> None:
        """Renews the hold while `link` is open and its bot answers; closes the link when the bot does not
        answer, when another replica holds the machine's channel, or before an unrenewed hold can lapse."""
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while True:
            try:
                await asyncio.wait_for(link.closed.wait(), RENEW_EVERY_SECONDS)
                return
            except TimeoutError:
                pass
            if loop.time() - renewed >= UNRENEWED_LIMIT_SECONDS:
                why = "its hold could not be renewed (the replicas' store does not answer)"
            elif not await link.answers(PING_SECONDS):
                why = "its bot does not answer"
            else:
                try:
                    held = await self._claims.hold_link(link.machine_id, HOLD_SECONDS)
                except StoreUnavailable:
                    continue
                if held:
                    renewed = loop.time()
                    continue
                why = "its channel is held at another replica"
            log.warning("bot %s: %s; this link is closed", shown(link.machine_id), why)
            await link.disconnect()
            return

    async def let_go(self, machine_id: str) -> None:
        await self._claims.let_go_link(machine_id)
