"""Reaching a session's bot whose channel ended at another replica, through the store.

The session's owner record (dispatcher/store/owners.py) names the replica; the request goes to it
over the store's relay and its answer comes back. No owner yet (a cold bot still starting, a bot
re-dialling after its replica drained) is "not yet": the caller waits and asks again. One process
has no other replica: the answer is always "not here" (dispatcher/store/local.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from dispatcher.channel.bots import BotChannels
from dispatcher.errors import ApiError
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.coordination import Coordination

RELAY_TIMEOUT_SECONDS = 15.0  # the bot's own answer included (an SDP answer: tens of ms)


class StoreRemote:
    """The answer of the replica whose channel holds a session's bot, found by its owner record."""

    def __init__(self, coordination: Coordination) -> None:
        self._coordination = coordination

    async def ask(self, session_id: str, method: str, params: Mapping[str, Any],
                  timeout: float = RELAY_TIMEOUT_SECONDS) -> Mapping[str, Any] | None:
        try:
            return await self._coordination.ask_owner(session_id, method, params, timeout)
        except TimeoutError:
            raise ApiError(502, "bot_timeout", "the replica holding the session's bot did not answer") from None
        except StoreUnavailable:
            raise ApiError(503, "store_unavailable", "the replicas' store is unreachable: cannot find the "
                           "session's bot", retry_after=2.0) from None


class BotRelay(Protocol):
    """`StoreRemote`, as its callers see it (dispatcher/phone/calls.py `OwnerRelay`)."""

    async def ask(self, session_id: str, method: str, params: Mapping[str, Any],
                  timeout: float = ...) -> Mapping[str, Any] | None: ...


async def ask_bot(channels: BotChannels, remote: BotRelay, session_id: str, method: str,
                  params: Mapping[str, Any], timeout: float) -> Mapping[str, Any] | None:
    """The answer of the session's bot, its channel here or at another replica; None when no replica holds
    it. An `ApiError` when the bot refused or did not answer (`BotRequestFailed`, `RelayRefused`), or the
    store could not be asked."""
    link = channels.link_for(session_id)
    if link is not None:
        return await link.request(method, params, timeout=timeout)
    return await remote.ask(session_id, method, params, timeout=timeout)
