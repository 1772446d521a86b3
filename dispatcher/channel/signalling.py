"""SmallWebRTC signalling for a session's bot, carried over the bot's control channel.

The bot listens on nothing; its offer and trickled ICE candidates reach it as `webrtc.offer` /
`webrtc.ice` requests on the channel it dialled (botchannel/contract.py). A bot's refusal keeps
its status (400 bad offer, 409 a second peer); a bot that cannot be asked is a 502.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from botchannel.contract import METHOD_ICE, METHOD_OFFER
from dispatcher.channel.bots import BotChannels
from dispatcher.errors import ApiError

Kind = Literal["offer", "ice"]


class Remote(Protocol):
    """Another replica that may hold the session's bot: the coordination's owner record and relay
    (dispatcher/channel/remote.py; one process has none, and answers None)."""

    async def ask(self, session_id: str, method: str, params: Mapping[str, Any]) -> Mapping[str, Any] | None: ...


# How often the owner record is read again while the bot is not here: a cold bot still starting, or
# one re-dialling after its replica went away, may say hello at any replica at any moment.
REMOTE_POLL_SECONDS = 0.25


async def signal_bot(
    channels: BotChannels,
    session_id: str,
    kind: Kind,
    payload: dict[str, Any],
    *,
    deadline: float,
    remote: Remote,
) -> Mapping[str, Any]:
    """Sends the offer or candidates to the session's bot, on this replica's channel or through
    the replica that holds it; `deadline` (monotonic) bounds the wait for a bot that has not dialled
    in yet (a cold bot is still importing)."""
    method = METHOD_OFFER if kind == "offer" else METHOD_ICE
    while True:
        link = channels.link_for(session_id)
        if link is not None:
            return await link.request(method, payload)
        if (answer := await remote.ask(session_id, method, payload)) is not None:
            return answer
        left = deadline - time.monotonic()
        if left <= 0:
            raise ApiError(502, "bot_unreachable", "the session's bot has no channel to any dispatcher replica")
        await channels.wait_link(session_id, min(left, REMOTE_POLL_SECONDS))  # a hello here wakes it at once
