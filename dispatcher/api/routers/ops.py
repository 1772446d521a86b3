"""What operators and their tools read: liveness for load balancers, metrics for Prometheus.

    GET /healthz    200 `ok` (or `degraded`, saying what is wrong); 503 `draining` during a deploy;
                    on local machines, `bots_lack`: each carrier's credentials its bots are not given;
                    with several regions each peer's reachability (and, to an API key, what it
                    last advertised: its room, idle bots and demand)
    GET /metrics    Prometheus text, to an admin key (DISPATCHER_ADMIN_KEYS): it holds every key's
                    usage and spend and the deployment's load; a client key reads its own at GET /usage
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from dispatcher.api.admin_auth import admin_key
from dispatcher.api.dependencies import app_state, client_address, identified
from dispatcher.errors import ApiError
from dispatcher.observability.metrics import CONTENT_TYPE
from dispatcher.phone.bot_credentials import ShowsBotVariables, lacking

router = APIRouter()


@router.get("/healthz", summary="Liveness", tags=["ops"])
async def healthz(request: Request) -> JSONResponse:
    state = app_state(request)
    if state.phone.draining:  # a load balancer sends new calls to other replicas
        return JSONResponse({"status": "draining", "machines": state.machines.name}, status_code=503)
    # Liveness stays 200 (a broken bot is no reason to restart the dispatcher, and a balancer
    # that took every replica out while the store is down would turn a degraded deployment
    # into a dead one: docs/replicas.md); what is wrong is said.
    body: dict[str, object] = {"status": "ok", "machines": state.machines.name}
    if isinstance(state.machines, ShowsBotVariables):  # a phone call's bot needs its carrier's credentials
        body["bots_lack"] = lacking(state.machines.bot_variables())
    if state.reserve is not None and (detail := state.reserve.health()) is not None:
        body["detail"] = detail
    if state.peers.by_name:  # several regions: which answer (a region down degrades none of the others)
        body["region"] = state.peers.regions.here
        # A peer's room, idle bots and demand are what only a signed peer reads at /regions/state
        # (a tenant's traffic, and when a neighbour is short): shown to an API key, not to anyone.
        detailed = await _has_key(request)
        body["regions"] = {name: peer.to_json() if detailed else {"reachable": peer.reachable}
                           for name, peer in sorted(state.peers.by_name.items())}
    if health := state.replication.coordination.health():  # several replicas: their store's
        body["store"] = health
        if health["status"] != "ok":
            body["status"] = "degraded"
    return JSONResponse(body)


async def _has_key(request: Request) -> bool:
    try:  # a runtime key's scrypt off the event loop: this route answers anyone
        await app_state(request).auth.identify_off_loop(request.headers.get("authorization"), client_address(request))
    except ApiError:
        return False
    return True


@router.get("/metrics", summary="Prometheus metrics", tags=["ops"])
async def prometheus(request: Request) -> Response:
    state = app_state(request)
    settings = state.settings
    keyless = not (settings.api_key_hashes or settings.admin_key_hashes)  # one local caller: all of it is theirs
    if not keyless and admin_key(settings, request.headers.get("authorization")) is None:
        await identified(request)  # no key, or a wrong one: 401 as on every route
        raise ApiError(403, "admin_key_required", "/metrics holds every key's usage and spend and the deployment's "
                       "load: scrape it with an admin key (DISPATCHER_ADMIN_KEYS) as its bearer; a client key "
                       "reads its own key's figures at GET /usage", extra={})
    callers, evals = await state.sessions.active_by_release()
    return Response(state.metrics.render(callers, evals), media_type=CONTENT_TYPE)
