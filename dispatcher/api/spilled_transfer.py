"""A transfer another region asks here for a call spilled there from this region's SIP edge
(`POST /regions/sip-transfers`; the asker's side: dispatcher/phone/spilled_transfers.py).

Taken from a region alone, its signature checked (else 401), and only from the region holding the session
(its id's tag), else 403: no other region, nor any client, drives this region's edges. The edge asked is the one
this region recorded for the call when it relayed the start (`sip-edge:<session>`, edge_holder.py
`held_elsewhere`), never one the ask names; unrecorded, 409. It is asked exactly as a call of this region's own
is (sip_transfers.py), with the asker's request id, so a retry from there is answered with the first outcome,
within the asker's wait (`edge_window`). This region's own transfer list and time limit bound it too. The answer
is the edge's outcome or the refusal, as the asker would read its own edge's, signed for it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dispatcher.api.state import AppState
from dispatcher.errors import ApiError
from dispatcher.phone.sip_transfers import edge_ask
from dispatcher.phone.spilled_transfers import edge_window
from dispatcher.phone.transfer_allow import check_allowed
from dispatcher.phone.transfer_target import WARM, transfer_target


class SpilledAsk(BaseModel):
    """What the region holding the session asks: its session, and its edge ask (sip_transfers.py `edge_ask`)."""

    model_config = ConfigDict(extra="forbid")

    session_id: str = Field(pattern=r"^[0-9a-f]{24}$")
    to: str = Field(max_length=255)
    request_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")  # as the edge takes it (sipedge/control.py)
    time_limit: int = Field(ge=1, le=86400)
    mode: Literal["cold", "warm"] = "cold"
    summary: str | None = None


def read_ask(body: bytes) -> SpilledAsk:
    """The ask, or a 422 naming what is wrong with it."""
    try:
        return SpilledAsk.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False))
        raise ApiError(422, "invalid_request", f"a spilled call's transfer: {problems[:500]}") from None


async def hand_over_here(state: AppState, sender: str, asked: SpilledAsk) -> dict[str, Any]:
    """The outcome at this region's edge holding `asked.session_id`'s call, for `sender`, or an `ApiError`."""
    session_id = asked.session_id
    if state.peers.regions.holding(session_id) != sender:
        raise ApiError(403, "region_not_holding", f"session {session_id} is not held by region {sender}: only the "
                       "region holding a session asks for its call's transfer")
    sip = state.phone.sip
    if sip is None:
        raise ApiError(409, "transfer_not_configured", f"region {state.peers.regions.here} lists no SIP edge "
                       "(SIP_EDGE_URL), so it holds no edge of this call's")
    target = transfer_target(asked.to, asked.mode, asked.summary)  # 422, as the API's own check
    check_allowed(state.phone.settings.transfer_targets, target)  # this region's edges and trunks call the person
    edge = await sip.edges.reporter(session_id)  # 503 while the store does not answer
    if edge is None or edge not in sip.edges.urls:
        raise ApiError(409, "sip_edge_unknown", f"region {state.peers.regions.here} recorded no SIP edge it lists "
                       "for this call (its record expired, or the edge left SIP_EDGE_URL): nothing was transferred")
    time_limit = min(asked.time_limit, state.phone.settings.transfer_time_limit)
    body = edge_ask(target, asked.request_id, time_limit)
    handed = await sip.ask(session_id, body, edge, within=edge_window(target.mode == WARM))
    return {"how": handed.how, "to": handed.to, "sip_status": handed.sip_status}
