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

Where they wait (dispatcher/channel/secrets_vault.py): in the replicas' store when there is one,
so whichever replica the hello reaches can send them; in this replica's memory when there is none,
or when the store does not answer the deposit (a start goes on through a store outage, and only a
hello that reaches this replica gets its values then).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from botchannel.contract import METHOD_ASSIGN
from dispatcher.channel.bots import BotChannels, BotLink, BotRequestFailed
from dispatcher.channel.secrets_vault import MemoryVault, SecretsVault
from dispatcher.log_text import shown
from dispatcher.store.client import StoreUnavailable

log = logging.getLogger("dispatcher.channel.session_secrets")

DELIVERY_TIMEOUT_SECONDS = 15.0  # the bot answers `assign` at once; a slow one gets them on its next hello
STORE_RETRY_DELAYS_SECONDS = (0.25, 1.0, 3.0)  # reading the values back from a store that blinked


class SessionSecrets:
    def __init__(self, channels: BotChannels, shared: SecretsVault | None = None) -> None:
        self._channels = channels
        self._local = MemoryVault()  # no store, or the store did not answer the deposit
        self._shared = shared
        self._deliveries: set[asyncio.Task[None]] = set()
        channels.welcome_listeners.append(self._on_welcome)

    async def deposit(self, session_id: str, assignment: Mapping[str, Any], ttl_seconds: float) -> None:
        """Holds the session's `assign` for its bot (raises VaultFull: the start fails)."""
        if self._shared is not None:
            try:
                await self._shared.put(session_id, assignment, ttl_seconds)
                return
            except StoreUnavailable:
                log.warning("session %s: the store is unreachable; its values wait in this replica, whose "
                            "channel its bot must reach", session_id)
        await self._local.put(session_id, assignment, ttl_seconds)

    async def waiting(self, session_id: str) -> bool:
        """The session's bot has not taken its values yet (an unreachable store: assume it has)."""
        if await self._local.get(session_id) is not None:
            return True
        if self._shared is None:
            return False
        try:
            return await self._shared.get(session_id) is not None
        except StoreUnavailable:
            return False

    async def discard(self, session_id: str) -> None:
        """Forgets the values (taken, the start failed, the session stopped); the TTL covers a failure."""
        await self._local.delete(session_id)
        if self._shared is None:
            return
        try:
            await self._shared.delete(session_id)
        except StoreUnavailable:
            log.info("session %s: its values stay sealed in the store until they expire (store unreachable)",
                     session_id)

    def _on_welcome(self, link: BotLink) -> None:
        if link.hello.session_id is None:  # an idle reserve bot: its claim brings its session
            return
        task = asyncio.create_task(self._deliver(link, link.hello.session_id), name=f"deliver-{link.machine_id}")
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, link: BotLink, session_id: str) -> None:
        values = await self._read(session_id)
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

    async def _read(self, session_id: str) -> dict[str, Any] | None:
        if (values := await self._local.get(session_id)) is not None or self._shared is None:
            return values
        for delay in (*STORE_RETRY_DELAYS_SECONDS, None):
            try:
                return await self._shared.get(session_id)
            except StoreUnavailable:
                if delay is None:
                    log.warning("session %s: the store is unreachable; its bot gets its values when it dials again",
                                session_id)
                    return None
                await asyncio.sleep(delay)
        return None

    async def aclose(self) -> None:
        for task in list(self._deliveries):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._deliveries, return_exceptions=True)
