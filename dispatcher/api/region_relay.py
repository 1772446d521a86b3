"""Requests for a session that another region holds, relayed there (dispatcher/regions/relay.py).

The session id names its region. The caller's key and ownership are checked here first, so
nothing of a stranger's crosses regions; the holding region answers as if asked directly. A region
this one's polling finds unreachable is answered `503 region_unreachable` at once. A relayed
request is never relayed again. docs/regions.md.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dispatcher.api.state import AppState
from dispatcher.errors import ApiError, error_response
from dispatcher.regions.relay import RELAYED_BY, RegionUnreachable
from dispatcher.sessions.ids import owned_by, region_tag_of

SESSION_PATH = re.compile(r"^/sessions/([0-9a-f]{24})(?:/.*)?$")
EXTRA_SECONDS = 5.0  # past the longest wait a route itself may take before its answer's head


class RegionRelayMiddleware:
    def __init__(self, app: ASGIApp, state: AppState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        region = self._elsewhere(scope)
        if region is None:
            await self.app(scope, receive, send)
            return
        try:
            await self._relay(region, scope, receive, send)
        except ApiError as error:
            response = error_response(error.status, error.code, error.message, retry_after=error.retry_after,
                                      extra=error.extra)
            await response(scope, receive, send)

    def _elsewhere(self, scope: Scope) -> str | None:
        """The other region holding the session this request is for, if any."""
        peers = self.state.peers
        if scope["type"] != "http" or not peers.by_name:
            return None
        match = SESSION_PATH.match(scope["path"])
        if match is None:
            return None
        headers = dict(scope["headers"])
        if RELAYED_BY.encode() in headers:
            return None  # relayed here by a region: answered here, whatever it names
        region = peers.regions.by_tag.get(region_tag_of(match.group(1)))
        return region if region is not None and region != peers.regions.here else None

    async def _relay(self, region: str, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        who = state.auth.identify(headers.get("authorization"))
        await state.read_limit.check(who.id)
        session_id = SESSION_PATH.match(scope["path"]).group(1)  # type: ignore[union-attr]
        if not owned_by(session_id, who.owner_key):
            raise ApiError(404, "not_found", f"no session {session_id}")
        peer = state.peers.peer(region)
        if peer is None or not peer.reachable:
            raise unreachable(region, peer.problem if peer is not None else None)
        body = await _read_body(receive)
        path = scope["path"] + (f"?{scope['query_string'].decode('latin-1')}" if scope["query_string"] else "")
        try:
            answer = await state.region_relay.forward(
                peer.url, scope["method"], path, headers, body, still_reachable=lambda: peer.reachable,
                deadline_seconds=state.settings.session_wait_seconds + EXTRA_SECONDS)
        except RegionUnreachable as exc:
            raise unreachable(region, str(exc)) from None
        try:
            await send({"type": "http.response.start", "status": answer.status,
                        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1"))
                                    for k, v in answer.headers.items()]})
            async for chunk in answer.body:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            answer.close()


def unreachable(region: str, why: str | None) -> ApiError:
    return ApiError(503, "region_unreachable", f"the session is held by region {region}, which does not answer"
                    + (f" ({why})" if why else "") + ": retry in a moment", retry_after=1)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
