"""The dispatcher's ASGI app: `create_app()` wires settings, provider, rooms and routes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from dispatcher.api import docs as api_docs
from dispatcher.api import runner_offer, web
from dispatcher.api.auth import Authenticator
from dispatcher.api.hosts import LoopbackHostsOnly
from dispatcher.api.json_bodies import JsonBodies
from dispatcher.api.key_limits import PerKeyLimit
from dispatcher.api.limits import RequestLimits, SecurityHeaders
from dispatcher.api.replication import Replication
from dispatcher.api.routes import router
from dispatcher.api.state import AppState, app_state, caller
from dispatcher.channel.access import ChannelAccess
from dispatcher.channel.bots import BotChannels
from dispatcher.channel.credentials import BotCredentials
from dispatcher.channel.route import router as channel_router
from dispatcher.errors import install_error_handlers
from dispatcher.factory import build_coordination, build_machines, build_rooms, build_turn
from dispatcher.machines.base import Machines
from dispatcher.media.ice import IceServers, StaticIceServers, parse_ice_servers
from dispatcher.media.rooms import Rooms
from dispatcher.media.turn import TurnIceServers
from dispatcher.media.turn_quota import TurnQuota
from dispatcher.metrics import CONTENT_TYPE, Metrics
from dispatcher.phone import daily_dialin
from dispatcher.phone import routes as phone_routes
from dispatcher.phone import webhooks as phone_webhooks
from dispatcher.phone.state import build_phone_state
from dispatcher.reserve.factory import build_reserve
from dispatcher.sessions.reaper import Reaper, ReaperSettings
from dispatcher.sessions.service import SessionService
from dispatcher.settings import Settings

_FROM_ENV = object()  # "build it from the environment", as opposed to an explicit None (no rooms)


def create_app(
    settings: Settings | None = None,
    *,
    env: Mapping[str, str] | None = None,
    machines: Machines | None = None,
    rooms: Rooms | None | object = _FROM_ENV,
    ice_servers: IceServers | None = None,
) -> FastAPI:
    """Build the app. Tests pass `machines`/`rooms` pointed at local servers; `python -m
    dispatcher` builds everything from the environment."""
    env = os.environ if env is None else env
    settings = settings or Settings.from_env(env)
    coordination = build_coordination(env)  # several replicas: REDIS_URL (docs/replicas.md)
    machines = machines or build_machines(settings, env, coordination)
    resolved_rooms = build_rooms(settings, env) if rooms is _FROM_ENV else rooms
    assert resolved_rooms is None or isinstance(resolved_rooms, Rooms)
    metrics = Metrics(machines.name)
    turn = build_turn(settings, env)
    static_ice = parse_ice_servers(env.get("ICE_SERVERS", ""))
    if ice_servers is None:
        ice_servers = TurnIceServers(turn, static_ice) if turn is not None else StaticIceServers(static_ice)
    channel_access = _channel_access(settings)
    channels = BotChannels(channel_access.credentials if channel_access else None,
                           max_connections=settings.bot_channel_max_connections)
    replication = Replication(coordination, channels, machines) if coordination is not None else None
    reserve = build_reserve(env, settings.machines, machines, channels, metrics,
                            claims=coordination.claims if coordination is not None else None,
                            max_session_seconds=settings.max_session_seconds)
    if replication is not None:
        replication.attach_reserve(reserve)
    if channel_access is not None:
        machines.attach_channel(channel_access)  # local bots are told where to dial, and with which credential
    state = AppState(
        settings=settings,
        machines=machines,
        rooms=resolved_rooms,
        sessions=SessionService(
            settings, machines, resolved_rooms, metrics,
            launch=reserve.launch if reserve is not None else None, turn=turn, coordination=coordination,
            channels=channels,
        ),
        metrics=metrics,
        auth=Authenticator(settings.api_key_hashes, settings.bot_channel_token),
        channels=channels,
        reserve=reserve,
        remote=replication.remote if replication is not None else None,
        replication=replication,
        channel_access=channel_access,
        start_limit=PerKeyLimit(
            settings.start_rate_per_key, settings.start_burst_per_key,
            shared=coordination.shared_rate(settings.start_rate_per_key, settings.start_burst_per_key)
            if coordination is not None else None,
        ),
        read_limit=PerKeyLimit(settings.read_rate_per_key, settings.read_burst_per_key, calls="session"),
        reaper=Reaper(
            machines,
            resolved_rooms,
            metrics,
            max_session_seconds=settings.max_session_seconds,
            settings=ReaperSettings(
                interval_seconds=settings.reaper_interval_seconds, grace_seconds=settings.reaper_grace_seconds
            ),
        ),
        ice_servers=ice_servers,
        # A client's TURN credential cannot be taken back: each key holds a bounded number.
        turn_quota=TurnQuota(turn.settings.credentials_per_key, turn.settings.ttl_seconds,
                             store=coordination.store if coordination is not None else None)
        if turn is not None else None,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if replication is not None:
            await replication.start()  # an unreachable store is only noted: it may come back
        reaping = asyncio.create_task(state.reaper.run()) if settings.reaper_interval_seconds > 0 else None
        refilling = asyncio.create_task(reserve.run(), name="reserve") if reserve is not None else None
        try:
            yield
        finally:
            if replication is not None:
                await replication.drain()
            if reaping is not None:
                reaping.cancel()
            if refilling is not None:
                refilling.cancel()
            await state.aclose()  # local mode: every bot is stopped before the dispatcher exits

    app = FastAPI(
        title="voicefleet dispatcher",
        version="0.1.0",
        summary="Starts one fresh machine per Pipecat voice session.",
        lifespan=lifespan,
        docs_url=None,  # served by api_docs, from here rather than a CDN, and behind the key
        redoc_url=None,
        openapi_url=None,
    )
    app.state.voicefleet = state
    app.state.phone = build_phone_state(
        env, settings, state.sessions, channels, metrics, coordination,
        replication.remote if replication is not None else None, owners=state.auth.by_id,
    )
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(runner_offer.router)
    app.include_router(channel_router)
    app.include_router(phone_routes.router)
    app.include_router(phone_webhooks.router)
    app.include_router(daily_dialin.router)

    @app.get("/healthz", summary="Liveness", tags=["ops"])
    async def healthz(request: Request) -> JSONResponse:
        if request.app.state.phone.draining:  # a load balancer sends new calls to other replicas
            return JSONResponse({"status": "draining", "machines": machines.name}, status_code=503)
        # Liveness stays 200 (a broken bot is no reason to restart the dispatcher, and a balancer
        # that took every replica out while the store is down would turn a degraded deployment
        # into a dead one: docs/replicas.md); what is wrong is said.
        body: dict[str, object] = {"status": "ok", "machines": machines.name}
        if reserve is not None and (detail := reserve.health()) is not None:
            body["detail"] = detail
        if coordination is not None:
            store = body["store"] = coordination.health()
            if store["status"] != "ok":
                body["status"] = "degraded"
        return JSONResponse(body)

    app.state.drain = replication.drain if replication is not None else None  # on SIGTERM: __main__

    @app.get("/metrics", summary="Prometheus metrics", tags=["ops"])
    async def prometheus(request: Request) -> Response:
        await caller(request)
        active = await app_state(request).sessions.active_count()
        return Response(metrics.render(active), media_type=CONTENT_TYPE)

    api_docs.mount(app)
    if settings.machines == "local":
        web.mount(app)

    app.add_middleware(JsonBodies)
    app.add_middleware(RequestLimits, max_body=settings.max_request_bytes, max_headers=settings.max_header_bytes)
    if settings.cors_allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_allow_origins),
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            # A page may read where its session lives and when to retry.
            expose_headers=["Location", "Retry-After"],
            max_age=600,
        )
    app.add_middleware(SecurityHeaders)
    if not state.auth.enabled:  # keyless: loopback only, and only for loopback names (DNS rebinding)
        # ... and the one public name the developer gave carriers (PHONE_PUBLIC_URL: a tunnel's).
        public = urlsplit(app.state.phone.settings.public_url or "").hostname
        app.add_middleware(LoopbackHostsOnly, also=frozenset({public} if public else set()))
    return app


def _channel_access(settings: Settings) -> ChannelAccess | None:
    """The bot credential: configured, or (local mode only) generated for this run."""
    if settings.bot_channel_token:
        return ChannelAccess(BotCredentials(settings.bot_channel_token))
    return ChannelAccess.generated() if settings.machines == "local" else None
