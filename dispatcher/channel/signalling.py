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
    """Another replica that may hold the session's bot: the static peers (dispatcher/channel/peers.py)
    or the store's owner record and relay (dispatcher/channel/remote.py)."""

    @property
    def polls(self) -> bool:
        """Worth asking again while the bot is not here yet (it may dial another replica)."""
        ...

    async def ask(self, session_id: str, method: str, params: Mapping[str, Any]) -> Mapping[str, Any] | None: ...


PEER_POLL_SECONDS = 0.25  # how often peers are asked again while a cold bot is still starting


async def signal_bot(
    channels: BotChannels,
    session_id: str,
    kind: Kind,
    payload: dict[str, Any],
    *,
    deadline: float,
    peers: Remote | None = None,
) -> Mapping[str, Any]:
    """Sends the offer or candidates to the session's bot, on this replica's channel or through
    the peer that holds it; `deadline` (monotonic) bounds the wait for a bot that has not dialled
    in yet (a cold bot is still importing)."""
    method = METHOD_OFFER if kind == "offer" else METHOD_ICE
    while True:
        link = channels.link_for(session_id)
        if link is not None:
            return await link.request(method, payload)
        if peers is not None and (answer := await peers.ask(session_id, method, payload)) is not None:
            return answer
        left = deadline - time.monotonic()
        if left <= 0:
            raise ApiError(502, "bot_unreachable", "the session's bot has no channel to any dispatcher replica")
        wait = left if peers is None or not peers.polls else min(left, PEER_POLL_SECONDS)
        await channels.wait_link(session_id, wait)
