"""An inbound SIP call's trunk and price on its `POST /start` (`sip_trunk`), taken from the SIP edge
alone: the number's API key that start carries is a client's key too, so the edge also presents its
own credential (derived from `SIP_EDGE_SECRET` for it: dispatcher/phone/edge_secret.py) in
`X-Voicefleet-Edge-Secret`. From anyone else the field is refused, never
quietly dropped, so a client learns at once that it cannot set what its calls cost. A start another
region relayed here is taken on that region's signed word that it checked its own edge's secret
(`EDGE_VOUCHED`): each region's edge has a secret of its own, and a relay carries none."""

from __future__ import annotations

from fastapi import Request

from dispatcher.api.edge_holder import holding_edge, presenting_edge
from dispatcher.api.region_relay import relayed_by
from dispatcher.api.schemas import StartRequest
from dispatcher.api.state import AppState
from dispatcher.phone.edge_secret import HEADER
from dispatcher.regions.signing import EDGE_VOUCHED, HEADERS_MARK, NONCE
from dispatcher.usage.trunk_line import TrunkLine


def edge_line(request: Request, state: AppState, payload: StartRequest | None) -> TrunkLine | None:
    """The start's line, or None when it names none; 403 `sip_edge_only` when the edge did not send it, 403
    `sip_edge_unlisted` when an edge SIP_EDGE_URL does not list did (one taken out of it, its host distrusted)."""
    asked = payload.sip_trunk if payload is not None else None
    if asked is None:
        return None
    line = TrunkLine(asked.trunk, "inbound", asked.usd_per_minute, asked.increment_seconds)
    if vouched_by_relay(request):  # the region it arrived at checked its own edge's credential
        return line
    presenting_edge(request.headers, state, "`sip_trunk` (a SIP call's trunk and price)")
    return line


async def edge_vouches(request: Request, state: AppState, what: str, session_id: str) -> bool:
    """Whether the SIP edge that holds `session_id`'s call sent `what` with its own credential: True; 403 from
    anyone else as `holding_edge` refuses (dispatcher/api/edge_holder.py), so a client learns it cannot set it.
    Relayed from another region, which forwards no edge credential: True only on that region's signed word that
    its own edge holding the call sent it (`vouched_by_relay`), and only when that region is the one recorded as
    relaying the call's start here (`RelayedStarts`: none for a session started here, or before the record was
    kept); else False (the field is left out, never refused, so the edge's other words land)."""
    region = relayed_by(request.scope)
    if region is None:
        await holding_edge(request.headers, state, what, session_id)
        return True
    if not vouched_by_relay(request) or state.relayed_starts is None:
        return False
    return await state.relayed_starts.relayer(session_id) == region


def vouched_by_relay(request: Request) -> bool:
    """Whether another region relayed this request with its word that it checked its own SIP edge's credential
    (EDGE_VOUCHED), that word covered by the relay's signature this region checked: its nonce's digest covers
    the mark (a region of a release before this one's digest covers no mark, and sends none). On a start, whose
    session is not yet recorded; on a session's call, `edge_vouches` asks which region relayed its start too."""
    return relayed_by(request.scope) is not None and request.headers.get(EDGE_VOUCHED) == "1" \
        and HEADERS_MARK in request.headers.get(NONCE, "")


def start_edge(request: Request, state: AppState) -> str | None:
    """The listed SIP edge whose own credential this start presents (in HEADER, priced or not): the edge its
    inbound call came in at, recorded for its session (dispatcher/phone/sip_edges.py `took_inbound`). None for
    anything else: a start without it (a client's, an edge without a credential) is not refused for it."""
    if state.trunk_calls is None or state.sip_edge is None or relayed_by(request.scope) is not None:
        return None
    edge = state.sip_edge.edge_of(request.headers.get(HEADER))
    return edge if edge in state.trunk_calls.edges.urls else None
