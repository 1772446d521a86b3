"""Requests for a session that another region holds, relayed there (dispatcher/regions/relay.py),
and requests another region relayed here, checked.

The session id names its region. The caller's key and ownership are checked here first, so
nothing of a stranger's crosses regions; the holding region answers as if asked directly. A region
this one's polling finds unreachable is answered `503 region_unreachable` at once. A SIP edge's
count of a call's minutes goes with this region's word for its edge (dispatcher/api/edge_holder.py). A
request relayed here carries a region's signature (else 401) and is never relayed again. docs/regions.md.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping

from starlette.datastructures import Headers, QueryParams
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dispatcher.api.admin_access import admin_reaches
from dispatcher.api.edge_holder import vouched_end
from dispatcher.api.limits import replaying
from dispatcher.api.state import AppState
from dispatcher.api.stream_slots import HeldStream
from dispatcher.errors import ApiError, error_response
from dispatcher.regions.relay import RegionUnreachable
from dispatcher.regions.signing import RELAYED_BY, RegionVerifier, signed_path
from dispatcher.sessions.ids import owned_by

SESSION_PATH = re.compile(r"^/sessions/([0-9a-f]{24})(?:/.*)?$")
EXTRA_SECONDS = 5.0  # past the longest wait a route itself may take before its answer's head


def relayed_by(scope: Scope) -> str | None:
    """The region that relayed this request here (its signature checked), if one did."""
    state: Mapping[str, object] = scope.get("state", {})
    region = state.get("relayed_by")
    return region if isinstance(region, str) else None


class RegionRelayMiddleware:
    def __init__(self, app: ASGIApp, state: AppState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            if any(name == RELAYED_BY.encode() for name, _ in scope["headers"]):
                body = await _read_body(receive)
                scope.setdefault("state", {})["relayed_by"] = await self._verified(scope, body)
                await self.app(scope, replaying(body, receive), send)
                return
            region = self._holder(scope)
            if region is None:
                await self.app(scope, receive, send)
                return
            response: Response = await self._relay(region, scope, receive)
        except ApiError as error:
            response = error_response(error.status, error.code, error.message, retry_after=error.retry_after,
                                      extra=error.extra)
        await response(scope, receive, send)

    async def _verified(self, scope: Scope, body: bytes) -> str:
        verifier = RegionVerifier(self.state.peers.regions, self.state.replication.coordination.spent)
        sender: str = await verifier.sender(scope["method"], signed_path(scope["path"], query_of(scope)),
                                            request_headers(scope), body)
        return sender

    def _holder(self, scope: Scope) -> str | None:
        """The other region holding the session this request is for, if any."""
        match = SESSION_PATH.match(scope["path"])
        return None if match is None else self.state.peers.regions.holding(match.group(1))

    async def _relay(self, region: str, scope: Scope, receive: Receive) -> StreamingResponse:
        state = self.state
        headers = request_headers(scope)
        peer = scope.get("client")
        who = await state.auth.identify_off_loop(headers.get("authorization"), str(peer[0]) if peer else "")
        await state.read_limit.check(who.id)
        match = SESSION_PATH.match(scope["path"])
        session_id = match.group(1)  # type: ignore[union-attr]
        rest = scope["path"][match.end(1):]  # type: ignore[union-attr]
        # An admin's read or stop of another key's session crosses too: the holding region checks the
        # admin key again and writes its audit line before it answers (dispatcher/api/admin_access.py).
        if not owned_by(session_id, who.owner_key) and not admin_reaches(
                state.settings, scope["method"], rest, headers.get("authorization")):
            raise ApiError(404, "not_found", f"no session {session_id}")
        body = await _read_body(receive)
        # A SIP edge's count of a call's minutes: this region knows its own edges' credentials (none crosses).
        marks = await vouched_end(state, scope["method"], rest, Headers(scope=scope), body, session_id)
        # A relayed wait (an event stream, a long-poll) holds one of this replica's wait slots, as
        # it would here: the key's and the replica's bounds hold whichever region answers it.
        release = state.waits.take(who.id) if waits_on_a_session(scope) else None
        try:
            return await relay_to(state, region, scope["method"], scope["path"], headers, body,
                                  release=release, marks=marks, query=query_of(scope))
        except BaseException:
            if release is not None:
                release()
            raise


async def relay_to(state: AppState, region: str, method: str, path: str, headers: Mapping[str, str],
                   body: bytes, release: Callable[[], None] | None = None,
                   marks: Mapping[str, str] | None = None, query: str = "") -> StreamingResponse:
    """The answer of `region` to this request (`path` read decoded, apart from its `query`),
    streamed back; 503 `region_unreachable` if it has none.
    `release`: called once the answer has been streamed (a wait slot); `marks`: what this region
    says of the request (the caller's headers never carry it)."""
    peer = state.peers.peer(region)
    if peer is None or not peer.reachable:
        raise unreachable(region, peer.problem if peer is not None else None)
    try:
        answer = await state.region_relay.forward(
            region, peer.url, method, path, headers, body, still_reachable=lambda: peer.reachable,
            deadline_seconds=state.settings.session_wait_seconds + EXTRA_SECONDS, marks=marks,
            query=query)
    except RegionUnreachable as exc:
        raise unreachable(region, str(exc)) from None

    async def chunks() -> AsyncIterator[bytes]:
        try:
            async for chunk in answer.body:
                yield chunk
        finally:
            answer.close()

    if release is not None:  # given back however the stream ends, even before its first byte
        return HeldStream(chunks(), release, status_code=answer.status, headers=answer.headers)
    return StreamingResponse(chunks(), status_code=answer.status, headers=answer.headers)


def unreachable(region: str, why: str | None) -> ApiError:
    return ApiError(503, "region_unreachable", f"the session is held by region {region}, which does not answer"
                    + (f" ({why})" if why else "") + ": retry in a moment", retry_after=1)


def waits_on_a_session(scope: Scope) -> bool:
    """A GET of an event stream or a long-poll, its `wait` read as the route reads it (`w%61it` is
    `wait`, the last of several counts, and only `started` waits)."""
    return scope["method"] == "GET" and (
        scope["path"].endswith("/events") or QueryParams(scope["query_string"]).get("wait") == "started")


def request_headers(scope: Scope) -> dict[str, str]:
    """The request's headers, a repeated one by its first value (as Starlette and the routes read it)."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return headers


def query_of(scope: Scope) -> str:
    """The query as it came, as signed and relayed."""
    query: str = scope["query_string"].decode("latin-1")
    return query


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
