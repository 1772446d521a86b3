"""The deployment at a glance, behind the admin key (dispatcher/api/admin_auth.py):

    GET /status            sessions, reserve, recent starts and refusals, cost per hour (api/status_view.py);
                           each SIP edge's own status (phone/sip_edge_status.py)
    GET /status/history    this replica's last hour, a sample a minute, for the charts
    GET /dashboard         the page showing both, live (web/src/dashboard.js), with the sessions, the
                           releases and a session's transcript and recording; served locally, and in
                           the cloud only with DASHBOARD_ENABLED=1

The page and its two assets hold nothing secret: it asks for the admin key and sends it as a bearer
token on each call; the data never comes without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse

from dispatcher.api.admin_auth import admin_of
from dispatcher.api.dependencies import app_state
from dispatcher.api.media_origin import MediaOrigin, sources
from dispatcher.api.schemas import StatusHistoryOut, StatusOut
from dispatcher.api.status_view import StatusView
from dispatcher.errors import ApiError

STATUS = "read the deployment's status"
STATIC_DIR = Path(__file__).parents[1] / "static"
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}

router = APIRouter(tags=["status"])


async def admitted(request: Request) -> str:
    return admin_of(request, STATUS)


Admin = Annotated[str, Depends(admitted)]


def _view(request: Request) -> StatusView:
    view = app_state(request).status
    if view is None:  # an app built without one (a test's partial graph)
        raise ApiError(503, "status_unavailable", "this dispatcher does not count its status")
    return view


@router.get("/status", summary="The deployment at a glance", response_model=StatusOut)
async def status(request: Request, _: Admin) -> dict[str, Any]:
    snapshot = await _view(request).snapshot()
    if (model_service := app_state(request).model_service) is not None:
        snapshot = {**snapshot, "model_service": model_service.status()}
    if (sip_edges := app_state(request).sip_edge_status) is not None:
        snapshot = {**snapshot, "sip_edges": await sip_edges.read()}
    artifacts = app_state(request).artifacts
    if artifacts is None:
        return snapshot
    if artifacts.settings.on:
        await artifacts.recordings.checked()
    return {**snapshot, "recordings": artifacts.recordings.status()}


@router.get("/status/history", summary="This replica's last hour, a sample a minute",
            response_model=StatusHistoryOut)
async def history(request: Request, _: Admin) -> dict[str, Any]:
    state = app_state(request)
    return {"replica": state.replication.coordination.replica_id, "minute_seconds": 60,
            "samples": _view(request).activity.history()}


def mount_dashboard(app: FastAPI) -> None:
    """The page and its assets (DASHBOARD_ENABLED; docs/operations.md shows it)."""
    page = (STATIC_DIR / "dashboard.html").read_text()
    media = MediaOrigin()

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard(request: Request) -> HTMLResponse:
        csp = dashboard_csp(await media.of(app_state(request).artifacts))
        return HTMLResponse(page, headers={"Content-Security-Policy": csp, "Cache-Control": "no-store"})

    for name, media_type in ASSETS.items():
        app.add_api_route(f"/dashboard/{name}", _asset(STATIC_DIR / name, media_type), include_in_schema=False)


def dashboard_csp(recordings: str | None) -> str:
    """Nothing from another host but a session's recording and transcript from the store's origin
    (`recordings`: a pre-signed URL's; None where the dispatcher serves them, api/media_origin.py)."""
    return (f"default-src 'none'; script-src 'self'; style-src 'self'; connect-src {sources(recordings)}; "
            f"media-src {sources(recordings)}; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")


def _asset(path: Path, media_type: str) -> Any:
    async def asset() -> FileResponse:
        return FileResponse(path, media_type=media_type)

    return asset
