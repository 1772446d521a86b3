"""A cold bot's session values reach it over its channel, never in its launch environment.

The start deposits the session's `assign` (botchannel/contract.py: the Daily room and bot token,
the bot's own TURN credentials, the caller's `body`) before it launches the machine
(dispatcher/sessions/service.py); the machine's launch values hold only its session id, its
transport and its own channel credential (dispatcher/machines/bot_environment.py). When the bot
has said a hello its credential vouches for (dispatcher/channel/bots.py: the credential names the
session, and a session's bot is the machine first admitted for it), the replica that welcomed it
sends it that `assign`, the same request a claimed reserve bot gets; once the bot has answered,
the values are forgotten. A bot whose channel drops before it answered dials again and is sent
them again; nobody else can be, because hellos for its session from any other machine are refused.

Where they wait is the coordination's (dispatcher/store/coordination.py, `SessionValues`): in
this process's memory, or sealed in the replicas' store so that whichever replica the hello
reaches can send them (in this replica's memory when the store does not answer the deposit: a
start goes on through a store outage, and only a hello that reaches this replica gets its values
then).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from botchannel.contract import METHOD_ASSIGN
from dispatcher.channel.bots import BotChannels, BotLink, BotRequestFailed
from dispatcher.observability.log_text import shown
from dispatcher.store.coordination import SessionValues

log = logging.getLogger("dispatcher.channel.session_secrets")

DELIVERY_TIMEOUT_SECONDS = 15.0  # the bot answers `assign` at once; a slow one gets them on its next hello


class SessionSecrets:
    def __init__(self, channels: BotChannels, values: SessionValues) -> None:
        self._channels = channels
        self._values = values
        self._deliveries: set[asyncio.Task[None]] = set()
        channels.welcome_listeners.append(self._on_welcome)
        channels.handover_listeners.append(self._on_handover)

    async def deposit(self, session_id: str, assignment: Mapping[str, Any], ttl_seconds: float) -> None:
        """Holds the session's `assign` for its bot (raises VaultFull: the start fails)."""
        await self._values.put(session_id, assignment, ttl_seconds)

    async def waiting(self, session_id: str) -> bool:
        """The session's bot has not taken its values yet (an unreachable store: assume it has)."""
        return await self._values.get(session_id) is not None

    async def discard(self, session_id: str) -> None:
        """Forgets the values (taken, the start failed, the session stopped); the TTL covers a failure."""
        await self._values.delete(session_id)

    def _on_welcome(self, link: BotLink) -> None:
        if link.hello.session_id is None:  # an idle reserve bot: its claim brings its session
            return
        self._spawn(link, link.hello.session_id)

    def _on_handover(self, link: BotLink) -> None:
        """An idle bot handed the session its machine was given (a warm pool pod its claim adopted)."""
        if link.session_id is not None:
            self._spawn(link, link.session_id)

    def _spawn(self, link: BotLink, session_id: str) -> None:
        task = asyncio.create_task(self._deliver(link, session_id), name=f"deliver-{link.machine_id}")
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, link: BotLink, session_id: str) -> None:
        values = await self._values.read(session_id)
        if values is None:  # already taken (a re-dial mid-session), or never held (a claimed reserve bot)
            return
        try:
            await link.request(METHOD_ASSIGN, values, timeout=DELIVERY_TIMEOUT_SECONDS)
        except BotRequestFailed as exc:
            log.warning("session %s: its bot %s did not take its values (%s); they wait for its next hello",
                        session_id, shown(link.machine_id), exc.code)
            return
        await self.discard(session_id)
        log.info("session %s: its values reached bot %s over the channel", session_id, shown(link.machine_id))

    async def aclose(self) -> None:
        for task in list(self._deliveries):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._deliveries, return_exceptions=True)
