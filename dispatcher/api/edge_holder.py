"""The SIP edge that holds a session's call, known by its own credential (dispatcher/phone/edge_secret.py), and
what the region the call came in at says for that edge to the region its session runs in.

Each region's edges have credentials of another SIP_EDGE_SECRET. An inbound call's start that this region
relays to another (a spill-over, or the caller's `region`) is recorded here at the edge that sent it, read off
that region's answer (`held_elsewhere`), as a start taken here is; the edge's counted end (`answered_seconds`
on `POST /sessions/{id}/sip_end`, which prices the call) comes here and is relayed there, checked here first
as the route checks a local one and marked `EDGE_VOUCHED` (`vouched_end`), signed by the relay. The region
that holds the session takes the count on that word alone (dispatcher/api/edge_line.py `edge_vouches`).
docs/sip.md ("Edge credentials").
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping

from starlette.responses import Response, StreamingResponse

from dispatcher.api.state import AppState
from dispatcher.errors import ApiError
from dispatcher.phone.edge_secret import HEADER
from dispatcher.regions.signing import EDGE_VOUCHED
from dispatcher.sessions.ids import Caller, owned_by

log = logging.getLogger("dispatcher.regions")
COUNT = "`answered_seconds` (what a SIP call's minutes are priced at)"
MAX_ANSWER_BYTES = 64 * 1024  # a call token's answer is under 2 KiB: its session id is read off no more
READ_SECONDS = 5.0  # its body once its head came: a token's few hundred bytes follow at once
END_PATH = "/sip_end"


def presenting_edge(headers: Mapping[str, str], state: AppState, what: str) -> str:
    """The SIP edge whose own credential `headers` present (in HEADER): 403 `sip_edge_only` from anyone else (a
    client learns it cannot set `what`), `sip_edge_unlisted` from an edge SIP_EDGE_URL no longer lists. Without
    SIP_EDGE_URL (an edge that takes calls in only) there is no list, and any edge credential of SIP_EDGE_SECRET's
    speaks."""
    if state.sip_edge is None:
        raise ApiError(403, "sip_edge_only", f"{what} is taken only from the SIP edge, and this dispatcher has no "
                       "SIP_EDGE_SECRET to know it by: set it, and give the edge the credentials derived from it "
                       "(docs/sip.md#edge-credentials)")
    given = headers.get(HEADER)
    edge = state.sip_edge.edge_of(given)
    if edge is None:
        why = state.sip_edge.refusal(given) if given else f"the edge presents its credential in {HEADER}"
        raise ApiError(403, "sip_edge_only", f"{what} is taken only from the SIP edge ({why}): leave it out")
    if state.trunk_calls is not None:
        state.trunk_calls.listed(edge)
    return edge


async def holding_edge(headers: Mapping[str, str], state: AppState, what: str, session_id: str) -> str:
    """The SIP edge whose own credential `headers` present (`presenting_edge`, refused as it refuses), the one
    holding `session_id`'s call: 403 `sip_edge_not_holding` from another edge than the one the call came in at
    (dispatcher/phone/sip_edges.py `reporter`). Without SIP_EDGE_URL no call is recorded at an edge."""
    edge = presenting_edge(headers, state, what)
    if state.trunk_calls is not None and await state.trunk_calls.edges.reporter(session_id) != edge:
        raise ApiError(403, "sip_edge_not_holding", f"session {session_id}'s call is held by another SIP edge "
                       f"(or by none): {what} is taken only from the edge the call came in at")
    return edge


async def vouched_end(state: AppState, method: str, rest: str, headers: Mapping[str, str], body: bytes,
                      session_id: str) -> dict[str, str]:
    """This region's word on a request for `session_id` it relays to the region holding the session: on a
    `POST …/sip_end` with the edge's count, EDGE_VOUCHED once the credential it presents is that of the edge
    recorded here as holding the call (refused as `holding_edge` refuses, before anything is relayed); nothing
    on anything else. The body is read as the route reads it (JSON, the last of a repeated field)."""
    if method != "POST" or rest != END_PATH:
        return {}
    try:
        told = json.loads(body)
    except (ValueError, RecursionError):  # no end the route would take: the region holding it says 422
        return {}
    if not isinstance(told, dict) or told.get("answered_seconds") is None:
        return {}
    if state.trunk_calls is None:  # no SIP_EDGE_URL: no record of which edge holds which call, so no word for one
        return {}
    await holding_edge(headers, state, COUNT, session_id)
    return {EDGE_VOUCHED: "1"}


async def held_elsewhere(state: AppState, edge: str | None, who: Caller, answer: Response) -> Response:
    """`answer`, another region's to an inbound call's start relayed there, passed on as it came; when `edge`
    (the listed SIP edge whose credential the start presented here) sent it and that region made the session,
    the session is recorded here at that edge (`took_inbound`: a store that does not answer never refuses the
    start, the record is owed), so the edge's end of the call, which comes here, is vouched for there."""
    if edge is None or state.trunk_calls is None or answer.status_code >= 300 \
            or not isinstance(answer, StreamingResponse):
        return answer
    chunks = aiter(answer.body_iterator)
    head = b""
    try:
        async with asyncio.timeout(READ_SECONDS):  # a region that stalls after its head holds the INVITE no longer
            async for chunk in chunks:
                head += chunk.encode() if isinstance(chunk, str) else bytes(chunk)
                if len(head) > MAX_ANSWER_BYTES:  # no call token's: passed on unread, and recorded at no edge
                    return StreamingResponse(_then(head, chunks), status_code=answer.status_code,
                                             headers=answer.headers)
    except TimeoutError:  # its stream is cut by now: a truncated token would pass for an answer
        log.warning("a spilled SIP start's answer stalled after its head: answered 504, no edge recorded")
        raise ApiError(504, "region_unanswered", "the region the call's start went to stopped answering "
                       f"mid-answer (past {READ_SECONDS:g} s): it may have made the session; try again with the same "
                       "Idempotency-Key, which finds it") from None
    session_id = _session_of(head)
    if session_id is not None and owned_by(session_id, who.owner_key) and state.peers.regions.holding(session_id):
        await state.trunk_calls.took_inbound(session_id, edge)
    return Response(head, status_code=answer.status_code, headers=answer.headers)


def _session_of(body: bytes) -> str | None:
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        return None
    session_id = answer.get("sessionId") if isinstance(answer, dict) else None
    return session_id if isinstance(session_id, str) else None  # its shape: `owned_by`'s to check


async def _then(head: bytes, rest: AsyncIterator[str | bytes | memoryview]) -> AsyncIterator[bytes]:
    yield head
    async for chunk in rest:
        yield chunk.encode() if isinstance(chunk, str) else bytes(chunk)
