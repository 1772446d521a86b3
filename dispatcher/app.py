"""The dispatcher's ASGI app: `create_app()` builds the object graph (dispatcher/wiring.py) and puts
the HTTP surface (dispatcher/api/) on it."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from fastapi import FastAPI

from dispatcher.api.mount import mount_api
from dispatcher.errors import Utf8JSONResponse
from dispatcher.machines.base import Machines
from dispatcher.media.ice import IceServers
from dispatcher.media.rooms import Rooms
from dispatcher.settings import Settings
from dispatcher.wiring import FROM_ENV, build_state, running


def create_app(
    settings: Settings | None = None,
    *,
    env: Mapping[str, str] | None = None,
    machines: Machines | None = None,
    rooms: Rooms | None | object = FROM_ENV,
    ice_servers: IceServers | None = None,
) -> FastAPI:
    """Build the app. Tests pass `machines`/`rooms` pointed at local servers; `python -m
    dispatcher` builds everything from the environment."""
    state = build_state(settings, env=env, machines=machines, rooms=rooms, ice_servers=ice_servers)
    app = FastAPI(
        title="voicefleet dispatcher",
        version="0.1.0",
        summary="Starts one fresh machine per Pipecat voice session.",
        lifespan=lambda _app: running(state),
        default_response_class=Utf8JSONResponse,  # never a 500 for a lone surrogate in an answer
        docs_url=None,  # served by dispatcher/api/routers/docs.py, from here rather than a CDN, and behind the key
        redoc_url=None,
        openapi_url=None,
        # Request spans when dispatcher/observability/tracing.py installed an exporter (never FastAPI's own set-up).
        telemetry={"auto_configure": False, "operation_spans": False, "metrics": False, "logs": False,
                   "exclude": _probes},
    )
    app.state.voicefleet = state  # the one state object routes reach (dispatcher/api/dependencies.py)
    mount_api(app, state)
    return app


def _probes(scope: MutableMapping[str, Any]) -> bool:
    """Health checks and scrapes, every few seconds from every load balancer: no trace of their own."""
    return scope.get("path") in ("/healthz", "/metrics")
