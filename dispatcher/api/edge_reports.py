"""The SIP edge's reports on its calls (`/edge/calls/{id}/…`, its own credential as a Bearer token), checked here
at the edge that holds the call, and those on an inbound call another region holds relayed there.

An inbound call spilled to another region keeps talking to the region its edge reached, which recorded the edge
as the call's (dispatcher/api/edge_holder.py `held_elsewhere`). Of the edge's reports, a transfer's (a bridged
leg's answer and end, whose minutes the session's telephony line prices, and a warm transfer's steps) can
concern such a call: they are checked here as a call of this region's own is (`sip_edge_not_holding` from
another edge), then relayed to the region holding the session with this region's signed word
(`EDGE_VOUCHED`), the edge's credential and any Authorization header left here. That region takes them on
that word alone, and only from the region it recorded as relaying the call's start (`edge_vouches`). The
other reports (a placed call's status, outcome and end) concern outbound calls, placed in their own region.
"""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from dispatcher.api.dependencies import app_state, not_found
from dispatcher.api.edge_line import edge_vouches
from dispatcher.api.region_relay import query_of, relay_to, relayed_by
from dispatcher.api.state import AppState
from dispatcher.errors import ApiError
from dispatcher.regions.signing import EDGE_VOUCHED

REPORT = "a SIP edge's report on a call"


async def reporting_edge(request: Request, session_id: str, *, crosses_regions: bool = False) -> AppState:
    """The state, for a request that presents a listed edge's own credential on a session the store recorded
    at that edge (its outbound call's hand-over, or its inbound call's start), or that another region relayed
    with its word for its own edge holding the call (`relayed_report`). One edge's credential drives no other
    edge's calls, nor any session no edge holds (a web session, a carrier's call). 404 naming nothing of a
    session without a record (or one another region holds), 403 one recorded at another edge (or at an edge no
    longer listed), 503 while the store does not answer (the edge retries its reports). Relayed, only a report
    that `crosses_regions` (a transfer's: `relayed_report`) is taken; the others concern calls placed here."""
    state = app_state(request)
    if relayed_by(request.scope) is not None:
        if not crosses_regions:
            raise ApiError(403, "sip_edge_only", f"{REPORT} of this kind is taken only from this region's own edge: "
                           "only a transfer's reports (a bridged leg, a warm step) are relayed between regions")
        if not await edge_vouches(request, state, REPORT, session_id):
            raise ApiError(403, "sip_edge_only", f"{REPORT} relayed by another region is taken only on the word of "
                           "the region the call's start came in at, that its edge holding the call sent it")
        return state
    await _held_by_its_edge(request, state, session_id, spilled=False)
    return state


async def relayed_report(request: Request, session_id: str) -> Response | None:
    """The answer of the region holding `session_id`, an inbound call this region relayed there, to the edge's
    report on it (a transfer's), checked here as `reporting_edge` checks a call of this region's; None when
    this region holds the session (or none does), or when the request was itself relayed here."""
    state = app_state(request)
    region = state.peers.regions.holding(session_id)
    if region is None or relayed_by(request.scope) is not None:
        return None
    await _held_by_its_edge(request, state, session_id, spilled=True)
    # Only the body's type crosses: the edge's credential is this region's to check, never the other's to see.
    sent = {"content-type": request.headers.get("content-type", "application/json")}
    return await relay_to(state, region, request.method, request.scope["path"], sent, await request.body(),
                          marks={EDGE_VOUCHED: "1"}, query=query_of(request.scope))


async def _held_by_its_edge(request: Request, state: AppState, session_id: str, *, spilled: bool) -> None:
    """Refuses (as `reporting_edge` says) a request that does not present the credential of the listed edge
    recorded as holding `session_id`'s call; `spilled`: a call another region holds, recorded here for its
    edge's words alone (else such a call is no session of this region's: 404)."""
    if state.trunk_calls is None:
        raise ApiError(401, "unauthorized", "the SIP edge's routes need SIP_EDGE_URL and SIP_EDGE_SECRET set "
                       "(docs/sip.md#edge-credentials)")
    edge = state.trunk_calls.edge_of(request.headers.get("authorization"))
    if not spilled and state.peers.regions.holding(session_id):
        raise not_found(session_id)
    holder = await state.trunk_calls.edges.reporter(session_id)
    if holder is None:
        raise not_found(session_id)
    if holder != edge:
        raise ApiError(403, "sip_edge_not_holding", f"session {session_id}'s call is held by another SIP edge: "
                       "only that edge's credential reports on it")
