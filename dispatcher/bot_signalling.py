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
from dispatcher.channel import BotChannels
from dispatcher.errors import ApiError

Kind = Literal["offer", "ice"]


async def signal_bot(
    channels: BotChannels, session_id: str, kind: Kind, payload: dict[str, Any], *, deadline: float
) -> Mapping[str, Any]:
    """Sends the offer or candidates to the session's bot; `deadline` (monotonic) bounds the wait
    for a bot that has not dialled in yet (a cold bot is still importing)."""
    link = await channels.wait_link(session_id, max(0.0, deadline - time.monotonic()))
    if link is None:
        raise ApiError(502, "bot_unreachable", "the session's bot has no channel to this dispatcher")
    return await link.request(METHOD_OFFER if kind == "offer" else METHOD_ICE, payload)
