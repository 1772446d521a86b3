"""`GET /bots/channel` (WebSocket): where bots dial in. Authenticated with the bot credential.

A wrong or missing credential is refused before the handshake completes (HTTP 403), so nothing
but a bot holding `BOT_CHANNEL_TOKEN` ever gets a frame. The API keys do not open it, and the
bot credential opens nothing else.
"""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, WebSocket

from botchannel.contract import CHANNEL_PATH
from dispatcher.channel import BotChannels

router = APIRouter()


@router.websocket(CHANNEL_PATH)
async def bot_channel(websocket: WebSocket) -> None:
    channels: BotChannels = websocket.app.state.voicefleet.channels
    if not channels.authorized(websocket.headers.get("authorization")):
        await websocket.close(code=1008)  # before accept(): the handshake is answered 403
        return
    await websocket.accept()
    try:
        await channels.serve(websocket)
    finally:
        with contextlib.suppress(Exception):
            await websocket.close()
