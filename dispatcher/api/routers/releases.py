"""The admin surface of releases (docs/releases.md): traffic over the bot's versions, changed in
seconds without a `pulumi up`, behind its own credential (dispatcher/api/admin_auth.py).

    GET  /releases                    each release: weight, stable, live sessions, idle bots, health
                                      (a client key: the releases and their traffic, not the load)
    PUT  /releases/{name}             {"weight": N}: N for it, the rest to the stable release
    PUT  /releases                    {"weights": {...}}: every weight at once, adding up to 100
    POST /releases/{name}/promote     100 % to it; it becomes the stable release
    POST /releases/rollback           100 % back to the stable release (just promoted: to the one before);
                                      {"version": V}: only while the traffic is still GET /releases's V
    POST /releases/{name}/smoke       one session pinned to it, its verdict the gate to its traffic; with a
                                      body, its scenario suite's verdict instead (eval_verdicts.py)
    GET  /releases/history            the audit trail, newest first
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from dispatcher.api.admin_auth import admin_of
from dispatcher.api.dependencies import app_state, client_address
from dispatcher.api.eval_verdicts import verified
from dispatcher.api.pipecat import plan_start
from dispatcher.api.routers.sessions import launched
from dispatcher.api.schemas import StartOut
from dispatcher.api.state import AppState
from dispatcher.errors import ApiError, Utf8JSONResponse
from dispatcher.machines.base import ChecksImages
from dispatcher.releases.eval_gate import not_found, plain_smoke_refusal, with_eval
from dispatcher.releases.names import DEFAULT_RELEASE
from dispatcher.releases.traffic import Traffic, Version, unknown_release

router = APIRouter(tags=["releases"])


async def admitted(request: Request) -> str:
    """The admin's id, or 401/403. A dependency, so FastAPI asks it before it validates a body: without
    the admin key nothing about the body is answered."""
    return admin_of(request)


Admin = Annotated[str, Depends(admitted)]


@router.get("/releases", summary="The releases and their traffic")
async def releases(request: Request) -> dict[str, Any]:
    """The admin's view; a client key reads which releases take how much of the traffic and their
    health, never the deployment's load (live sessions, idle bots) nor who changed what."""
    state = app_state(request)
    try:
        admin_of(request, purpose="read the releases' load")
    except ApiError:
        if not state.auth.enabled:  # keyless and reached through a public name: nobody's listing
            raise
        # 401 unless a client key; a runtime key's scrypt off the loop, its wrong secrets counted by sender
        await state.auth.identify_off_loop(request.headers.get("authorization"), client_address(request))
        return _client_view(await _view(state, state.releases.traffic))
    return await _view(state, state.releases.traffic)


CLIENT_FIELDS = ("name", "weight", "stable", "created")


def _client_view(view: dict[str, Any]) -> dict[str, Any]:
    return {
        "stable": view["stable"],
        "changed_at": view["changed_at"],
        "releases": [{**{name: release[name] for name in CLIENT_FIELDS},
                      "health": {"state": release["health"].get("state")},
                      "smoke": {"status": release["smoke"].get("status")},
                      "eval": _eval_counts(release["eval"])}
                     for release in view["releases"]],
    }


@router.put("/releases", summary="Set every release's weight at once")
async def set_weights(request: Request, by: Admin, payload: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    state = app_state(request)
    if set(payload) != {"weights"}:
        raise ApiError(422, "invalid_weight", 'send {"weights": {"RELEASE": PERCENT, ...}} adding up to 100, and '
                       "nothing else")
    weights = payload["weights"]
    if isinstance(weights, dict):
        current = state.releases.traffic.weights
        _launchable(state, [n for n, w in weights.items() if isinstance(w, int) and w > current.get(n, 0)])
    traffic = await state.releases.change(lambda t, v: t.with_weights(weights, by, v))
    return await _view(state, traffic)


@router.put("/releases/{name}", summary="Set one release's weight")
async def set_weight(request: Request, by: Admin, name: str,
                     payload: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    state = app_state(request)
    if set(payload) != {"weight"}:
        raise ApiError(422, "invalid_weight", 'send {"weight": PERCENT} (0-100); every weight at once: PUT /releases')
    weight = payload["weight"]
    if isinstance(weight, int) and weight > state.releases.traffic.weights.get(name, 0):
        _launchable(state, [name])
    traffic = await state.releases.change(lambda t, v: t.with_weight(name, weight, by, v))
    return await _view(state, traffic)


@router.post("/releases/rollback", summary="Send every start back to the stable release; just after a promote, "
             "to the release stable before it")
async def rollback(request: Request, by: Admin,
                   payload: Annotated[dict[str, Any] | list[Any] | None, Body()] = None) -> dict[str, Any]:
    """With `{"version": V}` (GET /releases's), rolled back only from the traffic V: what its reader was
    shown. Checked in the same compare-and-write as the change, so no change in between slips through."""
    state = app_state(request)
    expected = _asked_version(payload)

    def rolled_back(traffic: Traffic, version: Version) -> Traffic:
        if expected is not None and list(traffic.version) != expected:
            raise ApiError(409, "releases_changed", "the releases' traffic changed since the version sent "
                           f"({expected}, now {list(traffic.version)}): nothing was rolled back; read GET /releases "
                           "and send its version again", extra={"version": list(traffic.version)})
        return traffic.rolled_back(by, version)

    traffic = await state.releases.change(rolled_back)
    return await _view(state, traffic)


def _asked_version(payload: object) -> list[Any] | None:
    """The version a rollback was asked about, or None (no body: from whatever the traffic is now)."""
    if payload is None:
        return None
    version = payload.get("version") if isinstance(payload, dict) and set(payload) == {"version"} else None
    if not (isinstance(version, list) and len(version) == 2
            and type(version[0]) is int and isinstance(version[1], str)):
        raise ApiError(422, "invalid_rollback", 'send no body, or {"version": [MILLISECONDS, "REGION"]}: the '
                       "`version` of the GET /releases answer the rollback was decided on, and nothing else")
    return version


@router.post("/releases/{name}/promote", summary="Send every start to this release; it becomes the stable one")
async def promote(request: Request, by: Admin, name: str) -> dict[str, Any]:
    state = app_state(request)
    _launchable(state, [name])
    traffic = await state.releases.change(lambda t, v: t.promoted(name, by, v))
    return await _view(state, traffic)


def _launchable(state: AppState, raised: list[str]) -> None:
    """More traffic for a release whose machines cannot start (its bot file gone) is refused, as an
    unknown release is: every session given to it would fail. Where the provider cannot tell (a cloud
    image), its smoke session and the automatic rollback are the guard."""
    if not isinstance(state.machines, ChecksImages):
        return
    for name in raised:
        release = state.releases.catalogue.get(name)
        if release is None:
            continue  # answered by the change itself: 422 unknown_release
        for transport in state.settings.transports:
            why = state.machines.image_missing(release.image_for(transport))
            if why is not None:
                raise ApiError(409, "release_unavailable", f"{name} cannot take traffic: {why}. Put it back, or "
                               "list the release again with a bot file that exists (BOT_RELEASES or RELEASES) "
                               "and restart the dispatcher; nothing changed", extra={"release": name})


class SmokeOut(StartOut):
    """`POST /start`'s answer, marked as a smoke session's."""

    smoke: bool = True


# A smoke still running this long after its deadline lost the replica that watched it: another may start.
STALE_AFTER_DEADLINE_SECONDS = 60.0


@router.post("/releases/{name}/smoke", summary="Start a smoke session of a release: its gate to traffic",
             status_code=201, response_model=SmokeOut, response_model_exclude_none=True)
async def smoke(request: Request, response: Response, by: Admin, name: str,
                payload: Annotated[dict[str, Any] | None, Body()] = None) -> Any:
    """One session pinned to the release, answered as `POST /start` answers (connect to it the same
    way, with the admin key). Its verdict, from the machine's own reports, shows in `GET /releases`.

    With a body, `{"suite", "sessions", "failed"}`: the verdict of the release's scenario suite, run
    by `voicefleet releases smoke NAME --suite PATH`, recorded as its smoke (answered as `GET /releases`)."""
    state = app_state(request)
    if payload is not None:
        return Utf8JSONResponse(await _eval_verdict(state, name, payload, by))
    watch = state.smoke
    if watch is None:
        raise ApiError(503, "smoke_unavailable", "this dispatcher runs no smoke sessions")
    if state.releases.catalogue.get(name) is None:
        raise unknown_release(name, state.releases.catalogue.names)
    if (refusal := plain_smoke_refusal(state.releases.traffic, name, required=state.eval_required)) is not None:
        raise refusal
    who = state.auth.identify(request.headers.get("authorization"))  # the admin key owns its smoke sessions
    key = f"smoke-{name}-{secrets.token_hex(8)}"
    session_id = state.sessions.session_id_for(who.owner_key, key)
    stale = watch.deadline_seconds + STALE_AFTER_DEADLINE_SECONDS
    await state.releases.change(lambda t, v: t.smoke_started(name, session_id, time.time(), stale, by, v))
    plan = plan_start(None, state.settings.transports)
    try:
        answer = await launched(state, who, plan, response, idempotency_key=key, wait=False, release=name)
    except ApiError as exc:
        await watch.failed_to_start(session_id, f"{exc.code}: {exc.message}")
        raise
    except Exception as exc:
        await watch.failed_to_start(session_id, type(exc).__name__)
        raise
    state.sessions.timeline.note(session_id, "smoke", release=name, by=by)
    watch.watch(session_id, stop=lambda sid: state.sessions.stop(sid, caller=who.id))
    return {**answer, "smoke": True}


async def _eval_verdict(state: AppState, name: str, payload: dict[str, Any], by: str) -> dict[str, Any]:
    if state.releases.catalogue.get(name) is None:
        raise not_found(name)
    last = state.releases.traffic.smoke_of(name).eval
    after = last.at if last is not None else None
    verdict = await verified(state.sessions.listing, name, payload, by, after)
    traffic = await state.releases.change(lambda t, v: with_eval(t, name, verdict, v, after))
    return await _view(state, traffic)


@router.get("/releases/history", summary="Who changed the traffic, when, from what to what")
async def history(request: Request, _: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    return {"changes": await app_state(request).releases.history(limit)}


async def _view(state: AppState, traffic: Traffic) -> dict[str, Any]:
    # The deployment's sessions (local bots: every replica's, as `GET /status` counts them).
    running = (await state.status.running.running())[0] if state.status is not None else [
        m for m in await state.machines.list() if m.state.is_active]
    live = Counter(m.release or DEFAULT_RELEASE for m in running)
    idle = await state.reserve.idle_by_release() if state.reserve is not None else {}
    health = state.release_health
    return {
        "stable": traffic.stable,
        "version": list(traffic.version),
        "changed_at": traffic.version[0] / 1000 or None,
        "changed_by": traffic.changed_by,
        "reason": traffic.reason,
        "previous_stable": traffic.previous_stable or None,  # where a rollback goes when the stable takes all
        "releases": [
            {
                "name": release.name,
                "weight": traffic.weights.get(release.name, 0),
                "stable": release.name == traffic.stable,
                "created": release.created,
                "live_sessions": live.get(release.name, 0),
                "idle_bots": idle.get(release.name, 0),
                "health": await health(release.name, traffic) if health is not None
                else {"state": "breached" if release.name in traffic.held else "watching",
                      "reason": traffic.held.get(release.name)},
                "smoke": traffic.smoke_of(release.name).view(),
                "eval": _eval_of(traffic, release.name),
            }
            for release in state.releases.catalogue.releases
        ],
    }


def _eval_of(traffic: Traffic, name: str) -> dict[str, Any] | None:
    verdict = traffic.smoke_of(name).eval
    return verdict.view() if verdict is not None else None


def _eval_counts(view: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a client key reads of a release's eval: how it did and when, no session or admin id."""
    return {k: view[k] for k in ("passed", "runs", "ok", "at")} if view is not None else None
