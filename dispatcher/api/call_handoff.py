"""A carrier's call this region cannot start warm, handed to the nearest region that can.

At the region the carrier called (its signature checked there, as always): when the call's bot
could not start warm here within `PHONE_MAX_WAIT_SECONDS` (no idle bot and a cold start quoted
past it, or the session cap reached: spill-over's rule for `POST /start`), the nearest peer that
advertises room (and a warm bot, else a cold start within that wait) is asked, signed, for the
call's stream (dispatcher/regions/calls.py). At that peer: the one-time token is minted there,
naming where the call came from and why, and its own URL in `REGIONS` is answered (never
`PHONE_PUBLIC_URL`: behind a front door every region shares that name, and the stream could land
at a region its token does not open). The carrier then
streams to the peer directly; the session starts there when the stream connects, as any call's
does. Any failure answers the call here, as with one region. docs/regions.md.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping

import dispatcher.observability.tracing as tracing
from dispatcher.api.carrier_refusals import WEBHOOK_CARRIERS
from dispatcher.api.region_choice import why_not_here
from dispatcher.api.state import AppState
from dispatcher.errors import ApiError
from dispatcher.phone.access import websocket_url
from dispatcher.phone.calls import PHONE_CALLER, PHONE_TRANSPORT
from dispatcher.phone.tokens import CallGrant
from dispatcher.regions.calls import HandedCall
from dispatcher.regions.spill import AT_CAPACITY, COLD_TOO_SLOW, spill_target
from dispatcher.sessions.admission import CAPACITY_RETRY_AFTER_SECONDS
from dispatcher.sessions.ids import Caller
from dispatcher.store.client import StoreUnavailable

log = logging.getLogger("dispatcher.phone")

MAX_HANDED_PENDING = 1000  # tokens minted for calls other regions handed here, not yet redeemed
# A handed call's carrier (or a spilled token's client) connects within seconds: its place is held
# that long, not for the token's whole life (a token redeemed later starts if there is room then).
HANDED_PLACE_SECONDS = 15.0
# API keys' spilled tokens hold at most this part of the room between them (carriers' hand-offs may
# fill the rest): however many tokens keys mint, the rest stays open to other regions' spill-over
# and carrier hand-offs.
TOKEN_ROOM_SHARE = 0.5


async def handed_elsewhere(state: AppState, carrier: str) -> HandedCall | None:
    """The stream another region took this call on, or None: it is answered here."""
    if state.call_handoffs is None:
        return None
    patience = state.phone.settings.max_wait_seconds
    reason = await why_not_here(state, PHONE_TRANSPORT, patience)
    if reason is None:
        return None
    handoffs = state.call_handoffs
    target = spill_target([peer for peer in state.peers.nearest_first() if not handoffs.resting(peer.name)],
                          PHONE_TRANSPORT, patience)
    if target is None:
        return None
    with tracing.step("phone.handoff", **{"voicefleet.region": target.name, "voicefleet.phone.carrier": carrier,
                                          "voicefleet.phone.handoff_reason": reason}) as span:
        handed = await handoffs.ask(target, carrier, reason)
        if handed is None:
            tracing.failed(span, "not_taken")  # answered here, as when no region has room
            return None
    if target.capacity is not None:  # until its next poll: the call holds a place there now
        target.capacity = dataclasses.replace(target.capacity, room=max(0, target.capacity.room - 1))
    log.info("a %s call was handed to region %s (session %s): %s", carrier, handed.region, handed.session_id, reason)
    if state.reserve is not None:
        state.reserve.spilled_away()  # its caller reached this region: its planner counts the start
    return handed


async def room_for_calls(state: AppState) -> int:
    """Sessions that may still start here, less the handed calls whose carrier has not connected yet
    (at every replica of the region). With the store down, the room alone: no call is handed here then."""
    try:
        held = await state.phone.handed.held()
    except StoreUnavailable:
        held = 0
    return max(0, state.sessions.room() - held)


async def hold_place(state: AppState, grant: CallGrant, asker: tuple[str, str] | None = None) -> None:
    """A handed call's token holds a place under the cap until the carrier connects, for
    `HANDED_PLACE_SECONDS` at most, held for the whole region in its store (every replica mints).
    A key's spilled token (`asker`: the key's caller id, the session the token starts) holds it
    within the key's own share, and while held places take less than `TOKEN_ROOM_SHARE` of the
    room. Without the store none is held (503), and without room none either (429)."""
    phone, share = state.phone, state.sessions.share
    room = 0 if phone.draining else state.sessions.room()
    if asker is not None:
        room = math.ceil(room * TOKEN_ROOM_SHARE)
    seconds = max(1.0, min(HANDED_PLACE_SECONDS, grant.expires - phone.clock()))
    if asker is not None:
        await share.hold_place(*asker, seconds)
    try:
        held: bool | None = await phone.handed.hold(grant.token_id, min(room, MAX_HANDED_PENDING), seconds)
    except StoreUnavailable:
        held = None
    if not held and asker is not None:
        await share.forget(*asker)
    if held is None:
        raise ApiError(503, "store_unavailable", "this region's store does not answer, so the places held for "
                       "handed calls cannot be counted: retry in a moment", retry_after=1)
    if not held:
        raise ApiError(429, "at_capacity", "this region has no room for the call",
                       retry_after=CAPACITY_RETRY_AFTER_SECONDS)


async def stream_for(state: AppState, sender: str, data: object) -> dict[str, str]:
    """As the region a call is handed to: its stream here, with a one-time token naming `sender`."""
    if not isinstance(data, Mapping) or data.get("carrier") not in WEBHOOK_CARRIERS \
            or data.get("reason") not in (AT_CAPACITY, COLD_TOO_SLOW):
        raise ApiError(400, "invalid_request", f"expected {{\"carrier\": one of {', '.join(WEBHOOK_CARRIERS)}, "
                       f"\"reason\": {AT_CAPACITY} or {COLD_TOO_SLOW}}}")
    phone, carrier, regions = state.phone, str(data["carrier"]), state.peers.regions
    token, grant = phone.tokens.mint(carrier, handed_from=(sender, str(data["reason"])))
    await hold_place(state, grant)
    # The carriers' start rate here, taken now (and not again when the stream connects): a region
    # that hands calls over cannot mint more starts than its own webhooks could.
    try:
        await phone.calls.take_start()
    except ApiError:
        await phone.handed.release(grant.token_id)
        raise
    # This region's own address, never a shared front door's: the token opens a call here only.
    base = regions.urls[regions.here]
    return {"region": regions.here, "stream": websocket_url(base, f"/ws/{carrier}/{token}"),
            "session_id": state.sessions.session_id_for(Caller.named(PHONE_CALLER).owner_key, grant.session_key)}
