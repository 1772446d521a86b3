"""Sessions whose bot holds a channel here, recorded in the store as this replica's, and the
requests other replicas relay here answered from that channel.

A bot that says hello with its session (a cold bot, or one that re-dialled after a replica
drained or died) and a reserve bot claimed here make this replica the session's owner
(dispatcher/store/owners.py); the heartbeat renews it while the channel lasts, and a channel that
closes lets go (unless a newer one for the session is here), and so does a claim that failed,
which also removes the claim's record, so the bot is bound to the session at no replica. Writes
run in the background: a slow store never holds a bot's hello (and one that does not answer
leaves them to the heartbeat: dispatcher/store/forgiving.py). One process records nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from botchannel.answered_by import METHOD_ANSWERED_BY
from botchannel.contract import METHOD_ICE, METHOD_MEDIA_ATTACH, METHOD_OFFER, METHOD_STOP
from botchannel.transfer import METHOD_WARM_TRANSFER
from dispatcher.channel.bots import REQUEST_TIMEOUT_SECONDS, BotChannels, BotLink
from dispatcher.errors import ApiError
from dispatcher.store.coordination import Coordination
from dispatcher.store.relay import NotHere, asker_waits

log = logging.getLogger("dispatcher.channel.ownership")

# What another replica may relay to a bot here: signalling, and where a phone call's media is (the
# call's carrier socket at the asking replica), a stop where the platform has none (Cerebrium), and a warm
# transfer's step (the SIP edge's report reached another replica), and who answered a call placed out (the
# carrier's callback reached another replica).
# `assign` is only ever sent by the replica holding the bot.
RELAYABLE = frozenset({METHOD_OFFER, METHOD_ICE, METHOD_MEDIA_ATTACH, METHOD_STOP, METHOD_WARM_TRANSFER,
                       METHOD_ANSWERED_BY})
MAX_PENDING_WRITES = 10_000


class Ownership:
    def __init__(self, channels: BotChannels, coordination: Coordination) -> None:
        self._channels = channels
        self._coordination = coordination
        self._writes: set[asyncio.Task[None]] = set()
        channels.session_listeners.append(self._on_session)
        channels.close_listeners.append(self._on_close)
        channels.unbind_listeners.append(self._on_unbind)

    def held(self) -> list[str]:
        return self._channels.sessions()

    async def answer(self, session_id: str, method: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """A relayed request for a bot here (the relay's handler)."""
        if method not in RELAYABLE:
            raise ApiError(400, "invalid_request", f"only {sorted(RELAYABLE)} are relayed to a bot")
        link = self._channels.link_for(session_id)
        if link is None:
            raise NotHere(session_id)
        waits = asker_waits() or REQUEST_TIMEOUT_SECONDS  # the bot gets no longer than the asker waits for it
        return await link.request(method, params, timeout=min(waits, REQUEST_TIMEOUT_SECONDS))

    def _on_session(self, link: BotLink) -> None:
        assert link.session_id is not None
        session_id = link.session_id
        self._write(lambda: self._coordination.owners.claim(session_id), "claim", session_id)

    def _on_close(self, link: BotLink) -> None:
        session_id = link.session_id
        if session_id is not None and self._channels.link_for(session_id) is None:
            self._write(lambda: self._coordination.owners.release(session_id), "release", session_id)

    def _on_unbind(self, link: BotLink, session_id: str) -> None:
        bot_id = link.machine_id
        self._write(lambda: self._coordination.claims.unclaim(bot_id, session_id), "unclaim", session_id)
        if self._channels.link_for(session_id) is None:
            self._write(lambda: self._coordination.owners.release(session_id), "release", session_id)

    def _write(self, work: Callable[[], Coroutine[Any, Any, None]], what: str, session_id: str) -> None:
        if len(self._writes) >= MAX_PENDING_WRITES:
            log.warning("store writes backed up; %s of session %s left to the heartbeat", what, session_id)
            return

        task = asyncio.create_task(work(), name=f"owner-{what}-{session_id}")
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def settled(self, timeout: float = 2.0) -> None:
        """Waits for the store writes under way (tests; aclose)."""
        if self._writes:
            await asyncio.wait(set(self._writes), timeout=timeout)

    async def aclose(self) -> None:
        await self.settled()
