"""The carriers' WebSockets (Pipecat Cloud's paths) and the bots' media sockets.

    /ws/{twilio|telnyx|plivo|exotel}[/{token}]    a carrier's media stream
    /ws/generic/{service}[/{token}]               any other WebSocket client (`?body=` base64 JSON, keyless only)
    /bots/media/{session_id}                      where the call's bot dials in for its media

A refused upgrade is closed before `accept()`: the client sees HTTP 403 and nothing has started.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, WebSocket

from dispatcher.phone.access import Admitted, Refused, admit_upgrade, public_base, websocket_url
from dispatcher.phone.calls import PhoneCall
from dispatcher.phone.media_links import MEDIA_PATH, bearer_secret
from dispatcher.phone.relay import relay_call
from dispatcher.phone.settings import CARRIERS
from dispatcher.phone.state import PhoneState, phone_state
from dispatcher.phone.store_hop import serve_relayed_media
from dispatcher.sessions.ids import Caller
from dispatcher.store.client import StoreUnavailable

log = logging.getLogger("dispatcher.phone")
MAX_QUERY_BODY_BYTES = 4096  # Pipecat Cloud's cap on `?body=`

router = APIRouter()


@router.websocket("/ws/{carrier}")
async def carrier_stream(websocket: WebSocket, carrier: str) -> None:
    await _call(websocket, carrier, None)


@router.websocket("/ws/{carrier}/{token}")
async def carrier_stream_with_token(websocket: WebSocket, carrier: str, token: str) -> None:
    if carrier == "generic":  # /ws/generic/{service}: the service names this deployment; no token
        await _call(websocket, "generic", None)
        return
    await _call(websocket, carrier, token)


@router.websocket("/ws/generic/{service}/{token}")
async def generic_stream_with_token(websocket: WebSocket, service: str, token: str) -> None:
    await _call(websocket, "generic", token)


@router.websocket(MEDIA_PATH)
async def bot_media(websocket: WebSocket, session_id: str) -> None:
    state = phone_state(websocket)
    calls = state.calls
    secret = bearer_secret(websocket.headers.get("authorization"))
    link = calls.links.claim(session_id, secret)
    if link is None or secret is None:
        if secret is not None and calls.store is not None:  # the call may be at another replica
            await _relayed_bot_media(websocket, state, session_id, secret)
        else:
            await websocket.close(code=1008)  # before accept(): HTTP 403
        return
    if calls.store is not None and not await calls.store.spend_here(session_id, secret):
        await websocket.close(code=1008)  # spent at another replica first
        return
    await websocket.accept()
    if link.socket.done():  # the call ended (forget) while the handshake completed: nothing to relay
        await websocket.close(code=1000)
        return
    link.socket.set_result(websocket)
    await link.done.wait()  # the relay owns the socket until the call ends


async def _relayed_bot_media(websocket: WebSocket, state: PhoneState, session_id: str, secret: str) -> None:
    """A bot's media socket for a call whose carrier socket is at another replica: its secret is
    spent in the store (refused before the handshake otherwise), then its frames cross the store."""
    store = state.calls.store
    assert store is not None
    carrier_replica = await store.spend(session_id, secret)
    if carrier_replica is None or carrier_replica == store.replica_id:  # unknown, spent, or a call here that ended
        await websocket.close(code=1008)
        return
    await websocket.accept()
    state.active_calls += 1  # a drain waits for it as for a carrier's call
    try:
        stats = await serve_relayed_media(websocket, store.bus, session_id, carrier_replica, store.lease_seconds)
        log.info("phone call %s: bot media relayed to replica %s; ended by %s; frames to the bot %d, from it %d",
                 session_id, carrier_replica, stats.ended_by, stats.carrier_frames, stats.bot_frames)
    finally:
        state.active_calls -= 1


async def _call(websocket: WebSocket, carrier: str, token: str | None) -> None:
    state = phone_state(websocket)
    if carrier not in (*CARRIERS, "generic") or state.draining:  # draining: a deploy is replacing us
        await websocket.close(code=1008)
        return
    url = websocket_url(
        public_base(state.settings, websocket.headers, websocket.url.scheme),
        websocket.url.path,
        websocket.url.query,
    )
    try:
        admitted = admit_upgrade(state.settings, state.tokens, carrier, token, websocket.headers, url)
        owner = _owner(state, admitted)
        await _spend_everywhere(state, admitted)
        body = _body(admitted, websocket.query_params.get("body"))
    except Refused as exc:
        log.warning("phone: %s upgrade refused (%s)", carrier, exc.reason)
        await websocket.close(code=1008)
        return
    await websocket.accept()
    call = PhoneCall()
    state.active_calls += 1
    try:
        stats = await relay_call(
            websocket,
            lambda: state.calls.attach(call, carrier, admitted.session_key, body, owner),
            lambda reason: state.calls.end(call, reason),
        )
        first = (stats.first_bot_frame - stats.opened) * 1000 if stats.first_bot_frame else None
        log.info(
            "phone call %s (%s, %s): ended by %s; frames in %d, out %d, dropped before the bot %d; "
            "first bot audio %s after the stream opened",
            call.session_id, carrier, admitted.how, stats.ended_by, stats.carrier_frames, stats.bot_frames,
            stats.dropped, f"{first:.0f} ms" if first is not None else "never",
        )
        if state.metrics is not None:
            state.metrics.call_ended(stats, media="store" if call.relayed else "direct")
    finally:
        state.active_calls -= 1
        with contextlib.suppress(Exception):
            await websocket.close()


def _owner(state: PhoneState, admitted: Admitted) -> Caller | None:
    """A token's call is the session of the key that asked for it; any other call is the phone path's."""
    if admitted.owner is None:
        return None
    owner = state.owners(admitted.owner)
    if owner is None:  # the key was removed since it asked: its token opens nothing
        raise Refused("token_owner_unknown")
    return owner


async def _spend_everywhere(state: PhoneState, admitted: Admitted) -> None:
    """A token this replica had not seen may have opened a call at another one: the store says."""
    if state.shared_spent is None or admitted.token_id is None or admitted.expires is None:
        return
    try:
        first = await state.shared_spent.first_use(admitted.token_id, admitted.expires - state.clock() + 60.0)
    except StoreUnavailable:
        # This replica's own memory still refused a replay here; another replica's may not have seen
        # it. A replayed token names the same session (its key), so it reaches that session, never a
        # second machine: accepted, and said in the log, rather than failing every call.
        log.warning("phone: the store did not answer; token %s checked at this replica only", admitted.token_id)
        return
    if not first:
        raise Refused("token_replayed")


def _body(admitted: Admitted, query_body: str | None) -> Mapping[str, Any]:
    """The bot's `body`: the token's (from `POST /start`), or `?body=` on a keyless dispatcher
    (as Pipecat Cloud's generic endpoint, which takes it only where no auth is configured)."""
    if admitted.body:
        return admitted.body
    if query_body is None:
        return {}
    if admitted.how != "keyless":
        raise Refused("query_body_needs_a_token")  # a signed stream's body comes from its token
    if len(query_body) > MAX_QUERY_BODY_BYTES * 4 // 3 + 4:
        raise Refused("query_body_too_large")
    try:
        decoded = json.loads(base64.urlsafe_b64decode(query_body + "=" * (-len(query_body) % 4)))
    except (ValueError, binascii.Error):
        raise Refused("query_body_not_base64_json") from None
    if not isinstance(decoded, dict):
        raise Refused("query_body_not_an_object")
    return decoded
