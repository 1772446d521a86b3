"""The admin surface of releases (docs/releases.md): traffic over the bot's versions, changed in
seconds without a `pulumi up`, behind its own credential (dispatcher/api/admin_auth.py).

    GET  /releases                    each release: weight, stable, live sessions, idle bots, health
    PUT  /releases/{name}             {"weight": N}: N for it, the rest to the stable release
    PUT  /releases                    {"weights": {...}}: every weight at once, adding up to 100
    POST /releases/{name}/promote     100 % to it; it becomes the stable release
    POST /releases/rollback           100 % back to the stable release
    GET  /releases/history            the audit trail, newest first
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request

from dispatcher.api.admin_auth import admin_of
from dispatcher.api.dependencies import app_state
from dispatcher.api.state import AppState
from dispatcher.errors import ApiError
from dispatcher.releases.names import DEFAULT_RELEASE
from dispatcher.releases.traffic import Traffic

router = APIRouter(tags=["releases"])


async def admitted(request: Request) -> str:
    """The admin's id, or 401/403. A dependency, so FastAPI asks it before it validates a body: without
    the admin key nothing about the body is answered."""
    return admin_of(request)


Admin = Annotated[str, Depends(admitted)]


@router.get("/releases", summary="The releases and their traffic")
async def releases(request: Request, _: Admin) -> dict[str, Any]:
    state = app_state(request)
    return await _view(state, state.releases.traffic)


@router.put("/releases", summary="Set every release's weight at once")
async def set_weights(request: Request, by: Admin, payload: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    state = app_state(request)
    if set(payload) != {"weights"}:
        raise ApiError(422, "invalid_weight", 'send {"weights": {"RELEASE": PERCENT, ...}} adding up to 100, and '
                       "nothing else")
    weights = payload["weights"]
    traffic = await state.releases.change(lambda t, v: t.with_weights(weights, by, v))
    return await _view(state, traffic)


@router.put("/releases/{name}", summary="Set one release's weight")
async def set_weight(request: Request, by: Admin, name: str,
                     payload: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    state = app_state(request)
    if set(payload) != {"weight"}:
        raise ApiError(422, "invalid_weight", 'send {"weight": PERCENT} (0-100); every weight at once: PUT /releases')
    traffic = await state.releases.change(lambda t, v: t.with_weight(name, payload["weight"], by, v))
    return await _view(state, traffic)


@router.post("/releases/rollback", summary="Send every start back to the stable release")
async def rollback(request: Request, by: Admin) -> dict[str, Any]:
    state = app_state(request)
    traffic = await state.releases.change(lambda t, v: t.rolled_back(by, v))
    return await _view(state, traffic)


@router.post("/releases/{name}/promote", summary="Send every start to this release; it becomes the stable one")
async def promote(request: Request, by: Admin, name: str) -> dict[str, Any]:
    state = app_state(request)
    traffic = await state.releases.change(lambda t, v: t.promoted(name, by, v))
    return await _view(state, traffic)


@router.get("/releases/history", summary="Who changed the traffic, when, from what to what")
async def history(request: Request, _: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    return {"changes": await app_state(request).releases.history(limit)}


async def _view(state: AppState, traffic: Traffic) -> dict[str, Any]:
    live = Counter(m.release or DEFAULT_RELEASE for m in await state.machines.list() if m.state.is_active)
    idle = await state.reserve.idle_by_release() if state.reserve is not None else {}
    health = state.release_health
    return {
        "stable": traffic.stable,
        "version": list(traffic.version),
        "changed_at": traffic.version[0] / 1000 or None,
        "changed_by": traffic.changed_by,
        "reason": traffic.reason,
        "releases": [
            {
                "name": release.name,
                "weight": traffic.weights.get(release.name, 0),
                "stable": release.name == traffic.stable,
                "created": release.created,
                "live_sessions": live.get(release.name, 0),
                "idle_bots": idle.get(release.name, 0),
                "health": health(release.name, traffic) if health is not None
                else {"state": "breached" if release.name in traffic.held else "watching",
                      "reason": traffic.held.get(release.name)},
            }
            for release in state.releases.catalogue.releases
        ],
    }
