"""A SmallWebRTC offer (or trickled candidates) handed to a session's bot, once its machine has started:
the one path every offer takes, whether a client posts it (`POST /sessions/{id}/api/offer`,
dispatcher/api/routers/offers.py) or the dispatcher carries a caller's offer itself (a WhatsApp
call's, dispatcher/whatsapp/calls.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dispatcher.channel.bots import BotChannels
from dispatcher.channel.signalling import Kind, Remote, signal_bot
from dispatcher.errors import ApiError
from dispatcher.sessions.service import SessionService

NO_SIGNALLING = "this session's bot joins a room; there is no offer endpoint"


async def signal_session(
    sessions: SessionService, channels: BotChannels, remote: Remote, session_id: str, kind: Kind,
    payload: Mapping[str, Any], *, deadline: float,
) -> dict[str, Any]:
    """The bot's answer (`{sdp, type, pc_id}` to an offer). An early offer waits for the bot, up to
    `deadline` (monotonic); a session that is not WebRTC is 404, one that ended 409 with its cause."""
    machine = await sessions.wait_started(session_id)
    if not machine.is_webrtc:
        raise ApiError(404, "no_signalling", NO_SIGNALLING)
    if not machine.state.is_active:
        # Its cause too (the bot's own words, as GET /sessions/{id} has them): a client that shows
        # only this answer must not send its user looking for why.
        cause = f": {machine.detail}" if machine.detail else ""
        raise ApiError(409, "session_ended", f"session {session_id} has {machine.state.value}{cause}")
    return dict(await signal_bot(channels, session_id, kind, dict(payload), deadline=deadline, remote=remote))
