"""The HTTP surface put on an app: the error answers, every router (dispatcher/api/routers/), the
explorer, the local page, then the middleware every request passes through (the last added is the
outermost)."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import FastAPI

from botchannel.recording import MAX_PART_BYTES
from dispatcher.api.channel_port import ChannelOnItsOwnPort
from dispatcher.api.cors import allow_origins
from dispatcher.api.error_handlers import install_error_handlers
from dispatcher.api.hosts import LoopbackHostsOnly
from dispatcher.api.json_bodies import JsonBodies
from dispatcher.api.limits import RequestLimits, SecurityHeaders
from dispatcher.api.region_relay import RegionRelayMiddleware
from dispatcher.api.routers import (
    artifacts,
    audit,
    bots,
    campaigns,
    capacity,
    carriers,
    connect_hint,
    daily_dialin,
    daily_webhooks,
    docs,
    exotel_connect,
    keys,
    offers,
    ops,
    page,
    plivo_warm,
    regions,
    releases,
    runner_offer,
    session_list,
    sessions,
    sip_end,
    sip_eval_tokens,
    status,
    telnyx_dial,
    telnyx_warm,
    timeline,
    transfer,
    trunk_calls,
    twilio_dial,
    twilio_warm,
    usage,
    webhooks,
    whatsapp,
    whatsapp_eval,
)
from dispatcher.api.state import AppState
from dispatcher.artifacts.signed_paths import PART_PATH

ROUTERS = (sessions.router, timeline.router, offers.router, runner_offer.router, bots.router, carriers.router,
           webhooks.router, daily_dialin.router, daily_webhooks.router, ops.router, regions.router, releases.router,
           status.router, session_list.router, audit.router, artifacts.router, capacity.router, keys.router,
           usage.router, connect_hint.router, trunk_calls.router, twilio_dial.router, telnyx_dial.router,
           transfer.router, twilio_warm.router, telnyx_warm.router, plivo_warm.router, sip_end.router, whatsapp.router,
           whatsapp_eval.router, sip_eval_tokens.router, campaigns.router, exotel_connect.router)


def mount_api(app: FastAPI, state: AppState) -> None:
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    docs.mount(app)
    if state.dashboard:
        status.mount_dashboard(app)
    if state.settings.machines == "local":
        from dispatcher.machines.local.provider import LocalMachines

        page.mount(app, state.machines.bot_file if isinstance(state.machines, LocalMachines) else None)
    _add_middleware(app, state)


def _add_middleware(app: FastAPI, state: AppState) -> None:
    settings = state.settings
    if state.peers.by_name:  # several regions: innermost, after the request's bounds
        app.add_middleware(RegionRelayMiddleware, state=state)
    app.add_middleware(JsonBodies)
    app.add_middleware(RequestLimits, max_body=settings.max_request_bytes, max_headers=settings.max_header_bytes,
                       larger=((PART_PATH, MAX_PART_BYTES),))
    allow_origins(app, settings.cors_allow_origins, local=settings.machines == "local")
    app.add_middleware(SecurityHeaders)
    if not state.auth.enabled:  # keyless: loopback only, and only for loopback names (DNS rebinding)
        # ... and the one public name the developer gave carriers (PHONE_PUBLIC_URL: a tunnel's).
        public = urlsplit(state.phone.settings.public_url or "").hostname
        app.add_middleware(LoopbackHostsOnly, also=frozenset({public} if public else set()))
    if settings.bot_channel_port is not None:  # outermost: a route on the wrong port is not there at all
        app.add_middleware(ChannelOnItsOwnPort, channel_port=settings.bot_channel_port)
