"""SmallWebRTC signalling for a session's bot, carried over the bot's control channel.

The bot listens on nothing; its offer and trickled ICE candidates reach it as `webrtc.offer` /
`webrtc.ice` requests on the channel it dialled (botchannel/contract.py). A bot's refusal keeps
its status (400 bad offer, 409 a second peer); a bot that cannot be asked is a 502.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

from botchannel.contract import METHOD_ICE, METHOD_OFFER
from dispatcher.channel.bots import BotChannels
from dispatcher.channel.peers import Peers
from dispatcher.errors import ApiError

Kind = Literal["offer", "ice"]


PEER_POLL_SECONDS = 0.25  # how often peers are asked again while a cold bot is still starting


async def signal_bot(
    channels: BotChannels,
    session_id: str,
    kind: Kind,
    payload: dict[str, Any],
    *,
    deadline: float,
    peers: Peers | None = None,
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
        wait = left if peers is None or not peers.urls else min(left, PEER_POLL_SECONDS)
        await channels.wait_link(session_id, wait)
