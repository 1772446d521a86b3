"""The carriers' media-stream WebSockets, at Pipecat Cloud's paths.

    /ws/{twilio|telnyx|plivo|exotel}[/{token}]    a carrier's media stream
    /ws/generic/{service}[/{token}]               any other WebSocket client (`?body=` base64 JSON, keyless only)

The token may equally come as `?token=` or `Authorization: Bearer` (Pipecat Cloud's three forms).

Who may open a call is dispatcher/phone/access.py's rule; a refused upgrade is answered before
`accept()` (HTTP 403, or 404 for a carrier not served here, with a JSON error naming the way in:
dispatcher/api/carrier_refusals.py) and nothing has started. The call's bot dials its media
socket at `/bots/media/{session_id}` (dispatcher/api/routers/bots.py), and the relay between the
two is dispatcher/phone/relay.py.

A call is one trace: `phone.call` (the carrier, how it was let in, the session, who hung up), its
`phone.authenticate`, then the relay's steps (dispatcher/phone/relay.py), the session's own
`session.start` among them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from fastapi import APIRouter, WebSocket
from opentelemetry.trace import Span
from starlette.types import Message

import dispatcher.observability.tracing as tracing
from dispatcher.api import carrier_refusals
from dispatcher.api.cross_site import cross_site_refusal
from dispatcher.api.dependencies import app_state
from dispatcher.api.origins import allowed_origins
from dispatcher.api.placed_call_events import told_on_attach
from dispatcher.phone.access import (
    Refused,
    admit_upgrade,
    call_body,
    call_owner,
    presented_token,
    public_base,
    spend_everywhere,
    websocket_url,
)
from dispatcher.phone.calls import PhoneCall
from dispatcher.phone.relay import MediaSocket, close_socket, relay_call
from dispatcher.phone.settings import CARRIERS
from dispatcher.phone.sip_transfers import unshown_to_bot
from dispatcher.phone.transfers import LiveCall

log = logging.getLogger("dispatcher.phone")  # a call's lines, wherever its sockets are served

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


async def _call(websocket: WebSocket, carrier: str, token: str | None) -> None:
    state = app_state(websocket).phone
    if state.draining:  # a deploy is replacing us: the carrier retries elsewhere
        await websocket.close(code=1008)
        return
    if carrier not in (*CARRIERS, "generic"):
        message = carrier_refusals.unknown_carrier(carrier)
        log.warning("phone: stream refused: %s", message)  # not the path: it may hold a token
        await carrier_refusals.deny(websocket, 404, "unknown_carrier", message)
        return
    with tracing.step("phone.call", **{"voicefleet.phone.carrier": carrier}) as call_span:
        await _admitted_call(websocket, carrier, token, call_span)


def _other_page(websocket: WebSocket) -> str | None:
    """Why a keyless call is refused to the page that opens it, or None. A browser opens a WebSocket
    to any address without asking CORS, so on a keyless dispatcher, where the upgrade proves nothing,
    any web page would start bots: its Origin is held to the rule of writes (cross_site.py). A token,
    a signature or a credential is proof enough from any page."""
    settings = app_state(websocket).settings
    allowed = allowed_origins(settings.cors_allow_origins, local=settings.machines == "local")
    return cross_site_refusal(dict(websocket.scope.get("headers", [])), allowed)


async def _admitted_call(websocket: WebSocket, carrier: str, token: str | None, call_span: Span) -> None:
    state = app_state(websocket).phone
    url = websocket_url(
        public_base(state.settings, websocket.headers, websocket.url.scheme),
        websocket.url.path,
        websocket.url.query,
    )
    token = presented_token(token, websocket.headers, websocket.query_params.get("token"))
    with tracing.step("phone.authenticate") as span:
        try:
            admitted = admit_upgrade(state.settings, state.tokens, carrier, token, websocket.headers, url)
            owner = call_owner(state, admitted)
            await spend_everywhere(state, admitted)
            body = call_body(admitted, websocket.query_params.get("body"))
        except Refused as exc:
            message = carrier_refusals.refused(carrier, exc.reason, websocket.query_params)
            log.warning("phone: %s upgrade refused (%s): %s", carrier, exc.reason, message)
            tracing.failed(span, exc.reason)
            tracing.failed(call_span, exc.reason)
            await carrier_refusals.deny(websocket, 403, "call_refused", message)
            return
        if admitted.how == "keyless" and (page := _other_page(websocket)) is not None:
            log.warning("phone: %s upgrade refused (another origin's page): %s", carrier, page)
            tracing.failed(span, "cross_site")
            tracing.failed(call_span, "cross_site")
            await carrier_refusals.deny(websocket, 403, "origin_not_allowed", page)
            return
        span.set_attribute("voicefleet.phone.admitted", admitted.how)
    await websocket.accept()
    call = PhoneCall()
    handshake: list[Message] = []
    live: list[LiveCall] = []  # the call once its bot is attached: it may be transferred from then on
    telling: list[asyncio.Task[None]] = []  # a placed call's verdict that came before its bot, told to it now

    async def attach() -> MediaSocket:
        bot = await state.calls.attach(call, carrier, admitted.session_key, body, owner,
                                       standing=admitted.how == "exotel_basic", handed_from=admitted.handed_from,
                                       release=admitted.release, evaluation=admitted.evaluation,
                                       recording=admitted.recording, line=admitted.line,
                                       edge_call=admitted.edge_call)
        if call.session_id is not None:
            opened = state.transfers.opened(call.session_id, carrier, admitted.call, handshake,
                                            exotel_opened=admitted.how == "exotel_basic")
            # A transfer may close the carrier's stream: Exotel's flow then moves on to its Connect applet.
            opened.end_stream = functools.partial(close_socket, websocket, 1000, "handed to a person")
            live.append(opened)
            dialer = state.dialers.get(carrier) if admitted.call is None else None  # placed: the carrier signed none
            if dialer is not None:  # in the background: the caller's audio waits for no store read
                telling.append(asyncio.ensure_future(told_on_attach(app_state(websocket), dialer, call.session_id)))
        return bot

    async def end(reason: str) -> None:
        for task in telling:
            task.cancel()
        if live:
            state.transfers.closed(live[0])
        await state.calls.end(call, state.transfers.end_reason(live[0] if live else None, reason))

    def read_handshake(frames: list[Message]) -> list[Message]:
        handshake.extend(frames)  # as the carrier sent them: Twilio's `start` names its call, the SIP edge's its edge
        return unshown_to_bot(frames)

    def hung_up(at: float, how: str) -> None:
        if state.transfers.heard_hang_up(live[0] if live else None, at, how):
            state.calls.caller_hung_up(call, carrier, at, how)

    state.active_calls += 1
    try:
        stats = await relay_call(
            websocket,
            attach,
            end,
            handshake_seconds=state.settings.handshake_seconds if carrier != "generic" else None,
            silence_seconds=state.settings.silence_seconds if carrier != "generic" else None,
            max_frames_per_second=state.settings.max_frames_per_second,
            caller_hung_up=hung_up,
            handshake_read=read_handshake,
        )
        if call.session_id is not None:
            call_span.set_attribute("voicefleet.session.id", call.session_id)
        call_span.set_attribute("voicefleet.phone.ended_by", str(stats.ended_by))
        first = (stats.first_bot_frame - stats.opened) * 1000 if stats.first_bot_frame else None
        log.info(
            "phone call %s (%s, %s): ended by %s; frames in %d, out %d, dropped before the bot %d; "
            "first bot audio %s after the stream opened",
            call.session_id, carrier, admitted.how, stats.ended_by, stats.carrier_frames, stats.bot_frames,
            stats.dropped, f"{first:.0f} ms" if first is not None else "never",
        )
        if state.metrics is not None:
            state.metrics.call_ended(stats, media="store" if call.relayed else "direct", release=call.release)
    finally:
        state.active_calls -= 1
        if live:  # also when the relay failed before its end
            state.transfers.closed(live[0])
        with contextlib.suppress(Exception):
            await websocket.close()
