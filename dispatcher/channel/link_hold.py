"""One channel across the replicas for a bot that dials with its identity alone, and its resume key.

A Kubernetes pool bot has no credential: its pod's token is the proof, and a copy of that token
presents the same identity. So its first admitted hello gets a resume key in its welcome, which only
that bot holds (in memory): while the key lives, a hello for its pod must present it, at any replica.
With it, the bot's re-dial takes its channel at once, wherever it lands (the older link, here or at
another replica, is closed); without it, a hello is refused. The store keeps the key's digest
(`linkkey:<machine id>/<its uid>`, `BotLink.hold_id`: 90 s until the link is first kept, then
`KEY_SECONDS` from each renewal) and which replica holds the channel (`link:<machine id>/<its uid>`, `HOLD_SECONDS`, let
go when it closes): dispatcher/store/claims.py. A session is handed to a pool bot only by the replica
that holds its channel with its key, renewed just before (dispatcher/machines/k8s/handover.py).

The hello's admission is not forgiven when the store does not answer: the hello is refused, and the
bot dials again. A link is kept while its bot answers a ping and its hold is renewed; one whose hold
has gone unrenewed for a while is closed before the record can lapse. What is left: a copy that dials
before the real bot's first hello (its pod just started) is the one welcomed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from typing import Protocol

from dispatcher.observability.log_text import shown
from dispatcher.store.coordination import Claims
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.channel")

HOLD_SECONDS = 20.0  # the hold's life without a renewal: how long a dead replica's hold outlives it
# The key's life after each renewal of the bot's link: far longer than a bot takes to dial again, so no
# copy of its token is welcomed in its place once it has been (a bot lost for good costs its pod, never its
# channel; a pod that ended is refused by its identity check anyway).
KEY_SECONDS = 24 * 3600.0  # after its link's last renewal (renewed every RENEW_EVERY_SECONDS while held)
RENEW_EVERY_SECONDS = 5.0
PING_SECONDS = 5.0  # how long the bot has to answer before its link is taken for a drop
# A link whose hold could not be renewed for this long is closed before the record can lapse (and be
# taken at another replica): checked after each pause, so a pause and a store call fit in the rest.
UNRENEWED_LIMIT_SECONDS = HOLD_SECONDS - RENEW_EVERY_SECONDS - PING_SECONDS
HELD_ELSEWHERE = "this machine's bot is connected at another replica"


@dataclass(frozen=True)
class Admitted:
    key: str = field(repr=False)  # the bot's resume key, sent in its welcome
    digest: str  # what the store keeps of it
    resumed: bool  # it presented its key: it takes the place of any link of its pod, here or elsewhere


class HeldLink(Protocol):
    @property
    def machine_id(self) -> str: ...

    @property
    def closed(self) -> asyncio.Event: ...

    async def answers(self, timeout: float) -> bool: ...

    async def disconnect(self) -> None: ...


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class LinkHold:
    def __init__(self, claims: Claims) -> None:
        self._claims = claims

    async def admit(self, machine_id: str, presented: str | None) -> Admitted | str:
        """This replica now holds `machine_id`'s channel (and the key its bot is welcomed with), or why not."""
        key = presented or secrets.token_urlsafe(24)  # `first` is never answered to a key presented
        try:
            answer = await self._claims.admit_link(machine_id, digest(presented) if presented else None,
                                                   digest(key), HOLD_SECONDS, KEY_SECONDS)
        except StoreUnavailable:
            return "the replicas' store does not answer, so no replica can tell whether this bot is connected elsewhere"
        if answer == "refused":
            return "this machine's bot was welcomed already; a hello without its resume key is refused"
        if answer == "elsewhere":
            return HELD_ELSEWHERE
        return Admitted(key, digest(key), resumed=answer == "resumed")

    async def confirmed(self, machine_id: str, key_digest: str) -> bool:
        """Whether this replica still holds `machine_id`'s channel with this key, renewed now (before a
        session is handed to it)."""
        try:
            return await self._claims.keep_link(machine_id, key_digest, HOLD_SECONDS, KEY_SECONDS)
        except StoreUnavailable:
            return False

    async def keep(self, link: HeldLink, key_digest: str, hold_id: str | None = None) -> None:
        """Renews the hold and the key (held as `hold_id`, else the link's machine id) while `link` is open
        and its bot answers; closes the link when the bot does not answer, when it resumed at another
        replica, or before an unrenewed hold can lapse."""
        hold_id = hold_id or link.machine_id
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
                    held = await self._claims.keep_link(hold_id, key_digest, HOLD_SECONDS, KEY_SECONDS)
                except StoreUnavailable:
                    continue
                if held:
                    renewed = loop.time()
                    continue
                why = "its bot resumed at another replica, or its channel is held there"
            log.warning("bot %s: %s; this link is closed", shown(link.machine_id), why)
            await link.disconnect()
            return

    async def let_go(self, machine_id: str) -> None:
        await self._claims.let_go_link(machine_id)
