"""The sockets bots dial (bots accept nothing inbound):

    /bots/channel                each bot's channel, with its own machine's credential
    /bots/media/{session_id}     a phone call's media, with the one-time secret its bot was sent

A wrong, expired or missing channel credential is refused before the handshake completes (HTTP 403),
so nothing but a bot the dispatcher launched ever gets a frame. One exception: where the provider's
bots dial with their identity alone (a Kubernetes agent-sandbox pool's), a socket with no credential
at all is let through and its hello's identity decides (dispatcher/channel/identity.py,
`IdentityOnly`): until its hello is admitted it holds a place of its own, at most
`BOT_CHANNEL_MAX_IDENTITY_ONLY` and a few per address a minute (dispatcher/channel/identity_only_gate.py),
never a credentialed bot's channel. Past the hello, a bot reaches only what its credential was issued for
(dispatcher/channel/bots.py). The API keys do not open it, and a bot's credential opens nothing else.
Open channels are capped (`BOT_CHANNEL_MAX_CONNECTIONS`).
Replicas reach each other's bots through their shared store (dispatcher/channel/remote.py), never
over a route of their own: nothing but these sockets and the API listens.

A media secret opens its own call's socket once (dispatcher/phone/media_links.py); with several
replicas it may reach another replica than the call's carrier socket, and the frames then cross
the store (dispatcher/phone/store_hop.py).
"""

from __future__ import annotations

import contextlib
import logging

from fastapi import APIRouter, WebSocket

from botchannel.contract import CHANNEL_PATH
from dispatcher.api.dependencies import app_state
from dispatcher.channel.bots import BotChannels
from dispatcher.phone.media_links import MEDIA_PATH, bearer_secret
from dispatcher.phone.state import PhoneState
from dispatcher.phone.store_hop import serve_relayed_media

log = logging.getLogger("dispatcher.phone")  # a call's lines, wherever its sockets are served

router = APIRouter()
TRY_AGAIN_LATER = 1013  # the WebSocket close code for a server that is overloaded (RFC 6455 §7.4, IANA registry)


@router.websocket(CHANNEL_PATH)
async def bot_channel(websocket: WebSocket) -> None:
    channels: BotChannels = app_state(websocket).channels
    authorization = websocket.headers.get("authorization")
    grant = channels.authorized(authorization)
    if grant is None and channels.admits_identity_only(authorization):
        await _identity_only_channel(websocket, channels)
        return
    if grant is None or channels.connections >= channels.max_connections:
        await websocket.close(code=1008)  # before accept(): the handshake is answered 403
        return
    channels.connections += 1
    try:
        await websocket.accept()
        await channels.serve(websocket, grant)
    finally:
        channels.connections -= 1
        with contextlib.suppress(Exception):
            await websocket.close()


async def _identity_only_channel(websocket: WebSocket, channels: BotChannels) -> None:
    """A credential-less socket: a pending place until its hello is admitted, then a channel."""
    gate = channels.identity_only_gate
    refused = gate.refusal(websocket.client.host if websocket.client else None)
    if refused is not None:
        await websocket.accept()  # accepted only to say why: a refused handshake carries no reason
        with contextlib.suppress(Exception):
            await websocket.close(code=TRY_AGAIN_LATER, reason=refused)
        return
    pending, counted = True, False

    def admitted() -> bool:
        nonlocal pending, counted
        gate.release()
        pending = False
        if channels.connections >= channels.max_connections:
            return False
        channels.connections += 1
        counted = True
        return True

    try:
        await websocket.accept()
        await channels.serve(websocket, None, admitted)
    finally:
        if pending:
            gate.release()
        if counted:
            channels.connections -= 1
        with contextlib.suppress(Exception):
            await websocket.close()


@router.websocket(MEDIA_PATH)
async def bot_media(websocket: WebSocket, session_id: str) -> None:
    state = app_state(websocket).phone
    calls = state.calls
    secret = bearer_secret(websocket.headers.get("authorization"))
    link = calls.links.claim(session_id, secret)
    if link is None or secret is None:
        if secret is not None:  # the call may be at another replica
            await _relayed_bot_media(websocket, state, session_id, secret)
        else:
            await websocket.close(code=1008)  # before accept(): HTTP 403
        return
    if not await calls.media.spend_here(session_id, secret):
        await websocket.close(code=1008)  # spent at another replica first
        return
    await websocket.accept()
    if link.socket.done():  # the call ended (forget) while the handshake completed: nothing to relay
        await websocket.close(code=1000)
        return
    link.socket.set_result(websocket)
    await link.done.wait()  # the relay owns the socket until the call ends


async def _relayed_bot_media(websocket: WebSocket, state: PhoneState, session_id: str, secret: str) -> None:
    """A bot's media socket for a call whose carrier socket is at another replica: its secret is
    spent in the store (refused before the handshake otherwise), then its frames cross the store."""
    media = state.calls.media
    carrier_replica = await media.spend(session_id, secret)
    if carrier_replica is None or carrier_replica == media.replica_id:  # unknown, spent, or a call here that ended
        await websocket.close(code=1008)
        return
    await websocket.accept()
    state.active_calls += 1  # a drain waits for it as for a carrier's call
    try:
        stats = await serve_relayed_media(websocket, media, session_id, carrier_replica,
                                          state.settings.max_frames_per_second)
        log.info("phone call %s: bot media relayed to replica %s; ended by %s; frames to the bot %d, from it %d",
                 session_id, carrier_replica, stats.ended_by, stats.carrier_frames, stats.bot_frames)
    finally:
        state.active_calls -= 1
