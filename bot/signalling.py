"""HTTP signalling for the webrtc transport: Pipecat SmallWebRTC's offer/patch shape, one peer.

    POST  /api/offer  {sdp, type, pc_id?, restart_pc?}                 → {sdp, type, pc_id}
    PATCH /api/offer  {pc_id, candidates: [{candidate, sdp_mid, sdp_mline_index}]} → {"status": "success"}
    GET   /status     → {"state": "waiting"|"connected"|"ended", "session_id"}

One session per process: a second peer (another or no pc_id while one is active) gets 409.
Errors are JSON `{"error": {"code", "message"}}`, never a traceback. Uses `SmallWebRTCConnection`
directly, because Pipecat's request handler imports FastAPI (~350 ms of start-up), and serves
HTTP with bot/http_server.py rather than aiohttp (see there why).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiortc.sdp import candidate_from_sdp
from loguru import logger
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection

from bot.http_server import HttpError, JsonHttpServer, Request, Response
from bot.ice import IceSettings
from bot.ice_connection import new_connection

SessionState = Literal["waiting", "connected", "ended"]
OnConnection = Callable[[SmallWebRTCConnection], Awaitable[None]]


class SignallingServer:
    def __init__(
        self,
        *,
        session_id: str,
        on_connection: OnConnection,
        ice: IceSettings | None = None,
    ) -> None:
        self.session_id = session_id
        self.state: SessionState = "waiting"
        self.connection: SmallWebRTCConnection | None = None
        self.request_data: dict[str, Any] | None = None  # the first offer's `request_data`, if any
        self._on_connection = on_connection
        self.ice = ice or IceSettings()  # read at each new peer connection
        self._lock = asyncio.Lock()  # two racing offers: exactly one becomes the session's peer
        self._http = JsonHttpServer(
            {
                ("POST", "/api/offer"): self._offer,
                ("PATCH", "/api/offer"): self._patch,
                ("GET", "/status"): self._status,
            }
        )

    async def start(self, host: str, port: int) -> int:
        """Binds host:port (0 = any free port) and returns the port actually bound."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        sock.listen(16)
        sock.setblocking(False)
        # Our own socket: the port we report is the one we hold, with no bind-then-reopen race.
        await self._http.start(sock)
        bound: int = sock.getsockname()[1]
        return bound

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.disconnect()
        await self._http.close()

    async def _status(self, request: Request) -> Response:
        return Response(200, {"state": self.state, "session_id": self.session_id})

    async def _offer(self, request: Request) -> Response:
        return Response(200, await self.offer(request.json_object()))

    async def _patch(self, request: Request) -> Response:
        return Response(200, await self.patch(request.json_object()))

    async def offer(self, body: dict[str, Any]) -> dict[str, Any]:
        """`{sdp, type, pc_id?, restart_pc?}` → `{sdp, type, pc_id}`; HttpError for a bad offer.

        Reached over HTTP (a bot run by hand) or over the control channel (`webrtc.offer`).
        """
        sdp, sdp_type = body.get("sdp"), body.get("type")
        if not isinstance(sdp, str) or not sdp.strip():
            raise HttpError(400, "invalid_offer", "`sdp` must be a non-empty string")
        if sdp_type != "offer":
            raise HttpError(400, "invalid_offer", '`type` must be "offer"')
        if "m=audio" not in sdp:
            # aiortc answers almost any text; an offer without audio could never be a voice session.
            raise HttpError(400, "invalid_offer", "the offer has no audio media section")
        pc_id = _optional(body, "pc_id", str)
        restart_pc = bool(_optional(body, "restart_pc", bool))
        # Pipecat's `requestData` on the offer: the bot's data for this connection, like `body`.
        request_data = _optional(body, "request_data", dict)
        if request_data is None:
            request_data = _optional(body, "requestData", dict)

        async with self._lock:
            if self.state == "ended":
                raise HttpError(409, "session_ended", "this bot's session has ended")
            current = self.connection
            if current is not None:
                if pc_id != current.pc_id:
                    raise HttpError(409, "peer_already_connected", "this bot serves one peer and already has one")
                logger.info(f"renegotiating pc_id={pc_id} (restart_pc={restart_pc})")
                await current.renegotiate(sdp=sdp, type=sdp_type, restart_pc=restart_pc)
                answer: dict[str, Any] = current.get_answer()
                return answer

            connection = new_connection(self.ice)
            try:
                await connection.initialize(sdp=sdp, type=sdp_type)
            except Exception as exc:  # aiortc raises ValueError & co. on SDP it cannot use
                await connection.disconnect()
                raise HttpError(400, "invalid_offer", f"cannot answer this offer: {exc}") from None
            self.connection = connection
            if request_data is not None:
                self.request_data = request_data
            await self._on_connection(connection)
            first: dict[str, Any] = connection.get_answer()
            return first

    async def patch(self, body: dict[str, Any]) -> dict[str, Any]:
        """Trickle ICE: `{pc_id, candidates: [...]}` → `{"status": "success"}`."""
        pc_id, candidates = body.get("pc_id"), body.get("candidates")
        if not isinstance(pc_id, str) or not isinstance(candidates, list):
            raise HttpError(400, "invalid_patch", "expected {pc_id: string, candidates: [...]}")
        if self.connection is None or self.connection.pc_id != pc_id:
            raise HttpError(404, "unknown_pc_id", "no peer connection with this pc_id")
        for raw in candidates:
            await self.connection.add_ice_candidate(_ice_candidate(raw))
        return {"status": "success"}


def _optional(body: dict[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if value is not None and not isinstance(value, kind):
        raise HttpError(400, "invalid_offer", f"`{key}` must be a {kind.__name__}")
    return value


def _ice_candidate(raw: object) -> Any:
    """A trickled candidate in aiortc's form; an empty string is the end-of-candidates marker."""
    if not isinstance(raw, dict) or not isinstance(raw.get("candidate", ""), str):
        raise HttpError(400, "invalid_patch", "each candidate must be {candidate, sdp_mid, sdp_mline_index}")
    if not raw.get("candidate"):
        return None
    try:
        candidate = candidate_from_sdp(raw["candidate"].removeprefix("candidate:"))
    except (ValueError, IndexError, AssertionError) as exc:
        raise HttpError(400, "invalid_patch", f"malformed ICE candidate: {exc}") from None
    candidate.sdpMid = raw.get("sdp_mid")
    candidate.sdpMLineIndex = raw.get("sdp_mline_index")
    return candidate
