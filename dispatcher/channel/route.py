"""`GET /bots/channel` (WebSocket): where bots dial in, each with its own machine's credential.

A wrong, expired or missing credential is refused before the handshake completes (HTTP 403),
so nothing but a bot the dispatcher launched ever gets a frame; past the hello, a bot reaches
only what its credential was issued for (dispatcher/channel/bots.py). The API keys do not open it,
and a bot's credential opens nothing else. Open channels are capped (`BOT_CHANNEL_MAX_CONNECTIONS`).

`POST /internal/bots/{session_id}/request` (replica to replica) is mounted only where peers are
configured, and takes the replicas' own credential, which no bot can compute
(`mount_replica_route`).
"""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import APIRouter, FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse

from botchannel.contract import CHANNEL_PATH, METHOD_ICE, METHOD_OFFER
from dispatcher.channel.bots import BotChannels, BotRequestFailed
from dispatcher.channel.credentials import BotCredentials, bearer
from dispatcher.channel.peers import FORWARD_PATH
from dispatcher.errors import error_response

# What a peer may forward: signalling. `assign` is only ever sent by the replica holding the bot.
FORWARDABLE = frozenset({METHOD_OFFER, METHOD_ICE})

router = APIRouter()
replica_router = APIRouter()


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


def mount_replica_route(app: FastAPI, credentials: BotCredentials | None, peers: tuple[str, ...]) -> None:
    """The forwarding route exists only where replicas forward to each other."""
    if credentials is not None and peers:
        app.include_router(replica_router)


@replica_router.post(FORWARD_PATH, include_in_schema=False)
async def forwarded_request(request: Request, session_id: str) -> JSONResponse:
    """A peer replica's request for a bot whose channel ended here (dispatcher/channel/peers.py).

    Answered from this replica's own channel only: never forwarded again.
    """
    channels: BotChannels = request.app.state.voicefleet.channels
    presented = bearer(request.headers.get("authorization"))
    if channels.credentials is None or presented is None or not channels.credentials.is_replica(presented):
        return error_response(403, "forbidden", "peer requests need the replicas' credential")
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
