"""`GET /bots/channel` (WebSocket): where bots dial in. Authenticated with the bot credential.

A wrong or missing credential is refused before the handshake completes (HTTP 403), so nothing
but a bot holding `BOT_CHANNEL_TOKEN` ever gets a frame. The API keys do not open it, and the
bot credential opens nothing else.
"""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import JSONResponse

from botchannel.contract import CHANNEL_PATH, METHOD_ICE, METHOD_OFFER
from dispatcher.channel.bots import BotChannels, BotRequestFailed
from dispatcher.channel.peers import FORWARD_PATH
from dispatcher.errors import error_response

# What a peer may forward: signalling. `assign` is only ever sent by the replica holding the bot.
FORWARDABLE = frozenset({METHOD_OFFER, METHOD_ICE})

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


@router.post(FORWARD_PATH, include_in_schema=False)
async def forwarded_request(request: Request, session_id: str) -> JSONResponse:
    """A peer replica's request for a bot whose channel ended here (dispatcher/channel/peers.py).

    Answered from this replica's own channel only: never forwarded again.
    """
    channels: BotChannels = request.app.state.voicefleet.channels
    if not channels.authorized(request.headers.get("authorization")):
        return error_response(403, "forbidden", "peer requests need the bot credential")
    try:
        body: Any = await request.json()
    except ValueError:
        body = None
    method, params = (body.get("method"), body.get("params")) if isinstance(body, dict) else (None, None)
    if method not in FORWARDABLE or not isinstance(params, dict):
        return error_response(400, "invalid_request", f"expected {{method: one of {sorted(FORWARDABLE)}, params}}")
    link = channels.link_for(session_id)
    if link is None:
        return error_response(404, "not_here", "this replica holds no channel for that session")
    try:
        result = await link.request(method, params)
    except BotRequestFailed as exc:
        return error_response(exc.status, exc.code, exc.message)
    return JSONResponse({"result": dict(result)})
