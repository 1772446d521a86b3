"""This replica's part in its group of replicas (one process: a group of one), wired once,
started with the app.

It records the sessions whose bots are reached here (dispatcher/channel/ownership.py), answers
what other replicas relay here (a bot's signalling; in local mode also `machine.*` requests for
the bot processes this replica runs), finds another replica's bot for this one
(dispatcher/channel/remote.py), answers other replicas' claims of the idle bots held here
(dispatcher/reserve/elsewhere.py), transfers the calls whose streams are here for the others
(dispatcher/phone/transfer_anywhere.py), hands a recording under way to the replica its bot dialled
(dispatcher/artifacts/hand_over.py), and drains: on SIGTERM it tells the others, and the reserve
stops starting idle bots and hands planning over. docs/replicas.md has the whole picture.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dispatcher.artifacts.hand_over import METHOD_HAND_OVER, METHOD_TAKE_OVER
from dispatcher.artifacts.recordings import SessionRecordings
from dispatcher.channel.bots import LIVE_LINK_PING_SECONDS, BotChannels
from dispatcher.channel.ownership import Ownership
from dispatcher.channel.remote import StoreRemote
from dispatcher.machines.base import Machines
from dispatcher.machines.local.shared import METHODS as MACHINE_METHODS
from dispatcher.machines.local.shared import SharedLocalMachines
from dispatcher.phone.transfer_anywhere import METHOD_RELAYED_TRANSFER, TransfersAnywhere
from dispatcher.reserve.elsewhere import METHODS as RESERVE_METHODS
from dispatcher.reserve.reserve import Reserve
from dispatcher.store.coordination import Coordination
from dispatcher.store.relay import NotHere


class Replication:
    def __init__(self, coordination: Coordination, channels: BotChannels, machines: Machines) -> None:
        self.coordination = coordination
        self._machines = machines if isinstance(machines, SharedLocalMachines) else None
        self._channels = channels
        self.ownership = Ownership(channels, coordination)
        self.remote = StoreRemote(coordination)
        self._reserve: Reserve | None = None
        self._recordings: SessionRecordings | None = None
        self._transfers: TransfersAnywhere | None = None

    def attach_reserve(self, reserve: Reserve | None) -> None:
        self._reserve = reserve

    def attach_recordings(self, recordings: SessionRecordings) -> None:
        self._recordings = recordings

    def attach_transfers(self, transfers: TransfersAnywhere) -> None:
        self._transfers = transfers

    def held(self) -> list[str]:
        local = self._machines.sessions() if self._machines is not None else []
        return sorted({*self.ownership.held(), *local})

    async def handle(self, session_id: str, method: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        if method in MACHINE_METHODS and self._machines is not None:
            return await self._machines.answer(session_id, method, params)
        if method in RESERVE_METHODS:
            if self._reserve is None:
                raise NotHere(session_id)  # no reserve here: the asker launches cold
            return await self._reserve.answer(session_id, method, params)
        if method == METHOD_HAND_OVER:  # the session's bot dialled the asker: its recording goes there
            if self._recordings is None:
                raise NotHere(session_id)
            asker = params.get("asker")
            return await self._recordings.hand_over(session_id, asker if isinstance(asker, str) else "",
                                                    bot_here=await self._bot_answers_here(session_id))
        if method == METHOD_RELAYED_TRANSFER:  # a transfer checked at the asker, of a call whose stream is here
            if self._transfers is None:
                raise NotHere(session_id)
            return await self._transfers.answer_relayed(session_id, params)
        if method == METHOD_TAKE_OVER:  # a draining replica gives this one, its bot's, the recording
            if self._recordings is None:
                raise NotHere(session_id)
            return await self._recordings.take_over(session_id, params)
        return await self.ownership.answer(session_id, method, params)

    async def _bot_answers_here(self, session_id: str) -> bool:
        """Whether the session's bot channel here is live: one half-open since the bot re-dialled
        elsewhere is still listed until its socket notices, and must not keep the recording from it."""
        link = self._channels.link_for(session_id)
        return link is not None and not link.closed.is_set() and await link.answers(LIVE_LINK_PING_SECONDS)

    async def start(self) -> None:
        await self.coordination.start(self.handle, held=self.held)

    async def drain(self) -> None:
        if self._reserve is not None:
            await self._reserve.drain()
        await self.coordination.drain()

    async def aclose(self) -> None:
        await self.ownership.aclose()
        await self.coordination.aclose()
