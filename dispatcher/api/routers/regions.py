"""What regions ask each other, each request signed with `REGION_SECRET` (dispatcher/regions/signing.py).

    GET /regions/state    this region's name, its `REGIONS` listing, and what it can start now
    POST /regions/keys    as an Idempotency-Key's home: record the asking region as its holder,
                          unless another was recorded first; answer the holder
    POST /regions/calls   a carrier's call the asking region hands here: its one-time stream URL
                          here (dispatcher/api/call_handoff.py)
    POST /regions/webhooks  as a webhook signature's home: whether it is the first sighting
                          (dispatcher/regions/sightings.py)
    POST /regions/releases  a change of the releases' traffic made in the asking region: kept when
                          newer, else 409 (dispatcher/regions/releases.py)
    POST /regions/pace    as a pace bucket's home: the asking region's call's turn (dispatcher/regions/pace_homes.py)
    POST /regions/runtime   runtime settings changed in the asking region: merged (dispatcher/regions/runtime.py)
    GET  /regions/runtime   every runtime settings entry this region holds, read when its digest differs
    POST /regions/sip-transfers  a call spilled to the asking region from this region's SIP edge, handed
                          to a person by that edge (dispatcher/api/spilled_transfer.py); its answer is
                          signed with its status too (dispatcher/regions/answer_status.py)

Refused 401 `region_unauthenticated` without a valid signature, and 404 where the dispatcher runs
as one region. A stream token is minted only for a request taken once across the region's replicas:
with the store down, `POST /regions/calls` and `/regions/webhooks` are refused 503 (the asking
region decides alone), never taken on one replica's memory. docs/regions.md.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import Response

from botchannel.json_input import parse_json
from dispatcher.api.call_handoff import room_for_calls, stream_for
from dispatcher.api.dependencies import app_state
from dispatcher.api.spilled_transfer import checked_ask, hand_over_here, read_ask
from dispatcher.api.state import AppState
from dispatcher.errors import ApiError
from dispatcher.phone.calls import PHONE_TRANSPORT
from dispatcher.phone.daily_hook_relay import DAILY_RELAY
from dispatcher.phone.spilled_refusals import error_of
from dispatcher.phone.spilled_transfers import (
    ASK_BYTES,
    SPILLED_TRANSFER_PATH,
    SPILLED_TRANSFERS,
    SPILLED_TRANSFERS_VERSION,
)
from dispatcher.regions.answer_status import RETRY_AFTER, STATUS_SIGNATURE, status_signature
from dispatcher.regions.budget_use import FIELD as BUDGET_USE_FIELD
from dispatcher.regions.calls import CALLS_PATH
from dispatcher.regions.home import KEYS_PATH
from dispatcher.regions.pace_homes import KINDS, PACE_KINDS, PACE_PATH, PACING_ALONE
from dispatcher.regions.peers import STATE_PATH, Capacity
from dispatcher.regions.releases import RELEASES_PATH, STATE_FIELD
from dispatcher.regions.runtime import RUNTIME_PATH
from dispatcher.regions.runtime import STATE_FIELD as RUNTIME_FIELD
from dispatcher.regions.sightings import SIGHTINGS_PATH, parse_sighting
from dispatcher.regions.signing import ANSWER_SIGNATURE, SIGNATURE, RegionVerifier, answer_signature
from dispatcher.reserve.reserve import RegionFigures
from dispatcher.store.client import StoreUnavailable

router = APIRouter()
ONE_REGION = "this dispatcher runs as one region"
NO_RUNTIME = "this dispatcher keeps no runtime settings"
Part = TypeVar("Part")


class Offers(Protocol):
    """What takes a change made in another region (dispatcher/regions/releases.py, runtime.py), or its
    ask of a pace's turn (pace_homes.py)."""

    async def offered(self, sender: str, payload: object) -> dict[str, Any]: ...


def present(part: Part | None, missing: str) -> Part:
    """A part this dispatcher has only with several regions (or a runtime store), or 404 saying so;
    asked after the signature, so an unsigned request learns nothing of what runs here."""
    if part is None:
        raise ApiError(404, "not_found", missing)
    return part


async def offered_change(request: Request, part_of: Callable[[AppState], Offers | None], missing: str) -> Response:
    """A change made in the asking region, offered to the part that keeps it here: its answer, signed."""
    state = app_state(request)
    sender = await signed_by_region(request, state)
    offers = present(part_of(state), missing)
    return signed_answer(request, state, await offers.offered(sender, await json_body(request)))


async def signed_by_region(request: Request, state: AppState, *, strict: bool = False) -> str:
    """The region that sent `request`, or 401: its signature covers the method, path, query, body and
    the headers a region acts on.
    `strict`: its once-record is the store's, or 503 (as a carrier webhook's, which it stands for)."""
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    coordination = state.replication.coordination
    verifier = RegionVerifier(state.peers.regions, coordination.webhooks if strict else coordination.spent)
    try:
        return await verifier.sender(request.method, path, request.headers, await request.body())
    except StoreUnavailable:
        raise ApiError(503, "store_unavailable", "this region's store does not answer, so a replayed region "
                       "request could not be ruled out: retry in a moment", retry_after=1) from None


async def json_body(request: Request) -> object:
    """The request's JSON, or None when it is none (a nesting too deep to parse included: a 400)."""
    try:
        return parse_json(await request.body())
    except ValueError:
        return None


async def capacity(state: AppState) -> Capacity:
    # Read twice a second by every peer: cached figures only, never the provider's list. A phone
    # call's transport too: a peer hands its carriers' calls to a region that can take them warm.
    warm = {transport: state.reserve is not None and await state.reserve.can_claim(transport)
            for transport in dict.fromkeys((*state.settings.transports, PHONE_TRANSPORT))}
    figures = (RegionFigures(len(state.channels.idle()), 0, 0.0, math.inf) if state.reserve is None
               else await state.reserve.region_figures())
    return Capacity(warm=warm, idle=figures.idle, room=await room_for_calls(state),
                    cold_start_seconds=state.sessions.ready.before_launch(), demand_per_minute=figures.rate * 60,
                    refill_seconds=figures.refill_seconds, warming=figures.warming)


def signed_answer(request: Request, state: AppState, data: object, status_code: int = 200,
                  headers: dict[str, str] | None = None, *, signs_status: bool = False) -> Response:
    """JSON the asking region can tell came from a region: signed over its request's signature; `signs_status`:
    signed with its status too, for a route whose asker acts on the status."""
    body = json.dumps(data, separators=(",", ":")).encode()
    secret, request_signature = state.peers.regions.secret, request.headers.get(SIGNATURE, "")
    signed = {ANSWER_SIGNATURE: answer_signature(secret, request_signature, body)}
    if signs_status:
        retry_after = next((v for k, v in (headers or {}).items() if k.lower() == RETRY_AFTER), "")
        signed[STATUS_SIGNATURE] = status_signature(secret, request_signature, status_code, body, retry_after)
    return Response(body, status_code=status_code, media_type="application/json", headers={**(headers or {}), **signed})


@router.get(STATE_PATH, include_in_schema=False)
async def region_state(request: Request) -> Response:
    state = app_state(request)
    await signed_by_region(request, state)
    regions = state.peers.regions
    answer: dict[str, object] = {"region": regions.here, "regions": regions.listing(),
                                 "capacity": (await capacity(state)).to_json()}
    if state.region_releases is not None and (traffic := state.region_releases.state()) is not None:
        answer[STATE_FIELD] = traffic  # how a region that missed a pushed change gets it
    if state.region_runtime is not None:
        answer[RUNTIME_FIELD] = state.region_runtime.state()  # the same for the runtime settings
    answer[SPILLED_TRANSFERS] = SPILLED_TRANSFERS_VERSION  # what a peer's spilled calls' transfers may ask here
    if state.phone.daily_relay is not None:
        answer[DAILY_RELAY] = True  # Daily's dial-out events of other regions' legs are sent on from here
    if state.region_paces is not None:
        answer[PACE_KINDS] = list(KINDS)  # what a peer asks here as a bucket's home (an older release: fewer)
        if alone := state.region_paces.alone():
            answer[PACING_ALONE] = alone  # the paces' homes set this region's share aside while it paces alone
    # Each budgeted key's use here, which the peers add to theirs at a start (one budget for the deployment).
    if (budget_use := state.sessions.budgets.usage.shared(time.time())) is not None:
        answer[BUDGET_USE_FIELD] = budget_use
    return signed_answer(request, state, answer)


@router.post(RELEASES_PATH, include_in_schema=False)
async def releases_change(request: Request) -> Response:
    return await offered_change(request, lambda state: state.region_releases, ONE_REGION)


@router.post(RUNTIME_PATH, include_in_schema=False)
async def runtime_change(request: Request) -> Response:
    return await offered_change(request, lambda state: state.region_runtime, NO_RUNTIME)


@router.get(RUNTIME_PATH, include_in_schema=False)
async def runtime_record(request: Request) -> Response:
    state = app_state(request)
    await signed_by_region(request, state)
    return signed_answer(request, state, present(state.region_runtime, NO_RUNTIME).record())


@router.post(KEYS_PATH, include_in_schema=False)
async def key_holder(request: Request) -> Response:
    state = app_state(request)
    await signed_by_region(request, state)
    homes = present(state.key_homes, ONE_REGION)
    digest, region, how = homes.parse_record(await json_body(request))
    return signed_answer(request, state, {"holder": await homes.record(digest, region, how)})


@router.post(PACE_PATH, include_in_schema=False)
async def pace_turn(request: Request) -> Response:
    return await offered_change(request, lambda state: state.region_paces, ONE_REGION)


@router.post(CALLS_PATH, include_in_schema=False)
async def handed_call(request: Request) -> Response:
    state = app_state(request)
    sender = await signed_by_region(request, state, strict=True)
    data = await json_body(request)
    return signed_answer(request, state, await stream_for(state, sender, data))


@router.post(SIGHTINGS_PATH, include_in_schema=False)
async def webhook_sighting(request: Request) -> Response:
    state = app_state(request)
    await signed_by_region(request, state, strict=True)
    digest, seconds = parse_sighting(await json_body(request))
    try:
        first = await state.phone.webhooks.first_use("webhook:" + digest, seconds)  # as a webhook sent here
    except StoreUnavailable:
        raise ApiError(503, "store_unavailable", "this region's store does not answer: the webhook's sighting "
                       "cannot be recorded", retry_after=1) from None
    return signed_answer(request, state, {"first": first})


@router.post(SPILLED_TRANSFER_PATH, include_in_schema=False)
async def spilled_transfer(request: Request) -> Response:
    state = app_state(request)
    if len(await request.body()) > ASK_BYTES:
        raise ApiError(413, "payload_too_large", f"a spilled call's transfer is at most {ASK_BYTES} bytes")
    arrived = time.monotonic()  # the asker's `seconds_left` runs from here: the checks' store reads count too
    # Strict: with the store down a captured ask replayed at another replica within the skew would be taken again.
    try:
        sender = await signed_by_region(request, state, strict=True)
    except ApiError as unsure:  # signed, but not known to be the first: refused before the edge is asked
        if unsure.status != 503:
            raise
        return transfer_refused(request, state, unsure, edge_asked=False)
    # Signed with its status either way: the asker ends its session on this answer, or keeps its call with its bot.
    try:
        asked = read_ask(await request.body())
        checked = await checked_ask(state, sender, asked, arrived)
    except ApiError as refused:
        return transfer_refused(request, state, refused, edge_asked=False)
    try:
        answer = await hand_over_here(asked, checked)
    except ApiError as failed:
        return transfer_refused(request, state, failed, edge_asked=True)
    return signed_answer(request, state, answer, signs_status=True)


def transfer_refused(request: Request, state: AppState, refused: ApiError, edge_asked: bool) -> Response:
    headers = {"Retry-After": str(max(1, math.ceil(refused.retry_after)))} if refused.retry_after else {}
    return signed_answer(request, state, {"error": error_of(refused, edge_asked)}, refused.status, headers,
                         signs_status=True)
