"""Which region a start goes to: the one the caller pinned, this one, or where it spills over.

A start relayed here by another region is never sent on (its region was chosen there); a spilled
one carries where it came from and why, which its answer and timeline say. docs/regions.md.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response

from dispatcher.api.region_relay import query_of, relay_to, request_headers
from dispatcher.api.state import AppState
from dispatcher.errors import ApiError
from dispatcher.regions.signing import EDGE_VOUCHED, SPILLED
from dispatcher.regions.spill import Here, spill_reason, spill_target


async def chosen_region(state: AppState, transport: str, max_wait_seconds: float | None,
                        pinned: str | None) -> tuple[str, str | None]:
    """(the region to start in, why it spills over: None when it does not)."""
    regions = state.peers.regions
    if pinned is not None:
        if pinned not in regions.urls:
            raise unknown_region(pinned, sorted(regions.urls))
        return pinned, None
    reason = await why_not_here(state, transport, max_wait_seconds)
    if reason is None:
        return regions.here, None
    target = spill_target(state.peers.nearest_first(), transport, max_wait_seconds)
    return (target.name, reason) if target is not None else (regions.here, None)


async def started_elsewhere(request: Request, state: AppState, transport: str, max_wait_seconds: float | None,
                            pinned: str | None, caller_id: str, idempotency_key: str | None, *,
                            standby_home: bool = False, edge_vouched: bool = False) -> Response | None:
    """As the region a start arrived at (several regions): the answer of the region it goes to,
    relayed there as it came (marked spilled when it spills), or None when it starts here.
    `standby_home`: a key's home that does not answer is stood in for (dispatcher/regions/home.py).
    `edge_vouched`: this region checked the SIP edge's secret on the start (dispatcher/api/edge_line.py)."""
    target, reason = await chosen_region(state, transport, max_wait_seconds, pinned)
    if state.key_homes is not None and idempotency_key is not None:
        # One session per key in every region: where the key's home says it is held. Provisional
        # until the start made its session (`kept`): a refused start's record runs out in minutes.
        target = await state.key_homes.holder(caller_id, idempotency_key, target, standby=standby_home,
                                              provisional=not standby_home)
    if target == state.settings.region:
        return None
    if reason and state.reserve is not None:
        state.reserve.spilled_away()  # this region's caller: its planner counts the start
    # Only this region says a start spilled (the relay never passes a caller's own marker on: the
    # region the start goes to believes whatever a signed relay carries, its headers signed too).
    # A repeated header by its first value, as this region read it (its key, its Idempotency-Key).
    marks = {SPILLED: f"{state.settings.region} {reason}"} if reason else {}
    if edge_vouched:  # the region it goes to knows another SIP_EDGE_SECRET: this region vouches instead
        marks[EDGE_VOUCHED] = "1"
    answer = await relay_to(state, target, "POST", request.scope["path"], request_headers(request.scope),
                            await request.body(), marks=marks, query=query_of(request.scope))
    if answer.status_code < 300 and not standby_home:
        kept(state, caller_id, idempotency_key, target)
    return answer


def kept(state: AppState, caller_id: str, idempotency_key: str | None, region: str) -> None:
    """A keyed start made (or found) its session in `region`: its key's record is kept for the day."""
    if state.key_homes is not None and idempotency_key is not None:
        state.key_homes.keep(caller_id, idempotency_key, region)


async def why_not_here(state: AppState, transport: str, max_wait_seconds: float | None) -> str | None:
    """Why this region cannot start a `transport` session warm within the caller's patience (at
    its cap, or cold past it), or None when it can (or the caller may wait cold)."""
    room = state.sessions.room()
    warm = room > 0 and max_wait_seconds is not None and state.reserve is not None \
        and await state.reserve.can_claim(transport, max_wait_seconds)
    return spill_reason(Here(room, warm, state.sessions.ready.before_launch()), max_wait_seconds)


def spilled_from(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """(the region a relayed start spilled over from, why), if it did."""
    region, _, reason = headers.get(SPILLED, "").partition(" ")
    return (region, reason) if region and reason else None


def unknown_region(name: str, known: list[str]) -> ApiError:
    where = f"one of {', '.join(known)}" if known else "left out: this deployment runs one region"
    return ApiError(400, "unknown_region", f"`region` {name!r} is not a region of this deployment: it must be {where}")
