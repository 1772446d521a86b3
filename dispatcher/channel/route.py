"""`GET /bots/channel` (WebSocket): where bots dial in, each with its own machine's credential.

A wrong, expired or missing credential is refused before the handshake completes (HTTP 403),
so nothing but a bot the dispatcher launched ever gets a frame; past the hello, a bot reaches
only what its credential was issued for (dispatcher/channel/bots.py). The API keys do not open it,
and a bot's credential opens nothing else. Open channels are capped (`BOT_CHANNEL_MAX_CONNECTIONS`).
Replicas reach each other's bots through their shared store (dispatcher/channel/remote.py), never
over a route of their own: nothing but this socket and the API listens.
"""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, WebSocket

from botchannel.contract import CHANNEL_PATH
from dispatcher.channel.bots import BotChannels

router = APIRouter()


@router.websocket(CHANNEL_PATH)
async def bot_channel(websocket: WebSocket) -> None:
    channels: BotChannels = websocket.app.state.voicefleet.channels
    grant = channels.authorized(websocket.headers.get("authorization"))
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
