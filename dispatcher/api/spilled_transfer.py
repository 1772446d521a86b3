"""A transfer another region asks here for a call spilled there from this region's SIP edge
(`POST /regions/sip-transfers`; the asker's side: dispatcher/phone/spilled_transfers.py).

Taken from a region alone, its signature checked (else 401), and only from the region holding the session
(its id's tag). The edge asked is the one this region recorded for the call when it relayed the start
(`sip-edge:<session>`, edge_holder.py `held_elsewhere`), never one the ask names, and only while this region
still lists it. Each check refuses by its own name (dispatcher/phone/spilled_refusals.py), before the edge is
asked. The edge is asked exactly as for a call of this region's own (sip_transfers.py), with the asker's
request id, so a retry from there is answered with the first outcome, and within what is left of the asker's
wait (`seconds_left`, dispatcher/phone/spilled_window.py). This region's own transfer list and time limit
bound it too. The answer is the edge's outcome or the refusal, as the asker would read its own edge's, signed
with its status (dispatcher/regions/answer_status.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dispatcher.api.state import AppState
from dispatcher.errors import ApiError
from dispatcher.phone.sip_transfers import SipTransfers, edge_ask
from dispatcher.phone.spilled_refusals import (
    CALL_UNKNOWN,
    EDGE_NOT_HERE,
    INVALID_ASK,
    NOT_HOLDING,
    WINDOW_TOO_SMALL,
)
from dispatcher.phone.spilled_window import HOP_SECONDS, LEAST_WINDOW_SECONDS, may_ask, window_of
from dispatcher.phone.transfer_allow import check_allowed
from dispatcher.phone.transfer_target import WARM, TransferTarget, transfer_target


class SpilledAsk(BaseModel):
    """What the region holding the session asks: its session, its edge ask (sip_transfers.py `edge_ask`), and
    what is left of its wait (absent from a region of the release before)."""

    model_config = ConfigDict(extra="forbid")

    session_id: str = Field(pattern=r"^[0-9a-f]{24}$")
    to: str = Field(max_length=255)
    request_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")  # as the edge takes it (sipedge/control.py)
    time_limit: int = Field(ge=1, le=86400)
    mode: Literal["cold", "warm"] = "cold"
    summary: str | None = None
    seconds_left: float | None = Field(default=None, ge=0, le=3600, allow_inf_nan=False)


@dataclass(frozen=True)
class Checked:
    """An ask every check took: the edge to ask, and how."""

    sip: SipTransfers
    edge: str
    target: TransferTarget
    time_limit: int
    until: float  # time.monotonic() by which the edge's answer must have come


def read_ask(body: bytes) -> SpilledAsk:
    """The ask, or a 422 naming what is wrong with it."""
    try:
        return SpilledAsk.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False))
        raise ApiError(422, INVALID_ASK, f"a spilled call's transfer: {problems[:500]}") from None


async def checked_ask(state: AppState, sender: str, asked: SpilledAsk, arrived: float) -> Checked:
    """What `sender`'s ask is to do here, or the `ApiError` of the check that refused it. `arrived`: when the ask
    came (time.monotonic()), from which its window runs."""
    here, session_id = state.peers.regions.here, asked.session_id
    if state.peers.regions.holding(session_id) != sender:
        raise ApiError(403, NOT_HOLDING, f"session {session_id} is not held by region {sender}: only the region "
                       "holding a session asks for its call's transfer")
    if asked.seconds_left is not None and not may_ask(asked.seconds_left):
        raise ApiError(409, WINDOW_TOO_SMALL, f"the ask came with {asked.seconds_left:.1f} s left of its wait: region "
                       f"{here} needs {LEAST_WINDOW_SECONDS + HOP_SECONDS:g} s to ask its SIP edge and answer")
    sip = state.phone.sip
    if sip is None:
        raise ApiError(409, EDGE_NOT_HERE, f"region {here} lists no SIP edge (SIP_EDGE_URL), so this call's edge "
                       "is not one of its own")
    target = transfer_target(asked.to, asked.mode, asked.summary)  # 422, as the API's own check
    check_allowed(state.phone.settings.transfer_targets, target)  # this region's edges and trunks call the person
    edge = await sip.edges.reporter(session_id)  # 503 while the store does not answer
    if edge is None:
        raise ApiError(409, CALL_UNKNOWN, f"region {here} recorded no SIP edge for this call: its start did not come "
                       "through this region, or the record expired")
    if edge not in sip.edges.urls:
        raise ApiError(409, EDGE_NOT_HERE, f"the SIP edge region {here} recorded for this call is no longer in its "
                       "SIP_EDGE_URL")
    time_limit = min(asked.time_limit, state.phone.settings.transfer_time_limit)
    return Checked(sip, edge, target, time_limit, arrived + window_of(asked.seconds_left, target.mode == WARM))


async def hand_over_here(asked: SpilledAsk, checked: Checked) -> dict[str, Any]:
    """The outcome at this region's edge holding `asked.session_id`'s call, or the edge's `ApiError`."""
    body = edge_ask(checked.target, asked.request_id, checked.time_limit)
    within = max(checked.until - time.monotonic(), 0.001)  # the checks took their share of the window
    handed = await checked.sip.ask(asked.session_id, body, checked.edge, within=within)
    return {"how": handed.how, "to": handed.to, "sip_status": handed.sip_status}
