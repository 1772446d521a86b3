"""What operators and their tools read: liveness for load balancers, metrics for Prometheus.

    GET /healthz    200 `ok` (or `degraded`, saying what is wrong); 503 `draining` during a deploy;
                    on local machines, `bots_lack`: each carrier's credentials its bots are not given;
                    while the reserve backs off, `detail` (the last bot's error to an admin key only);
                    with several regions each peer's reachability (and, to an admin key, what it
                    last advertised: its room, idle bots and demand)
    GET /metrics    Prometheus text, to an admin key (DISPATCHER_ADMIN_KEYS): it holds every key's
                    usage and spend and the deployment's load; a client key reads its own at GET /usage
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from dispatcher.api.admin_auth import admin_key
from dispatcher.api.dependencies import app_state, identified
from dispatcher.errors import ApiError, Utf8JSONResponse
from dispatcher.observability.metrics import CONTENT_TYPE
from dispatcher.phone.bot_credentials import ShowsBotVariables, lacking

router = APIRouter()


@router.get("/healthz", summary="Liveness", tags=["ops"])
async def healthz(request: Request) -> Utf8JSONResponse:
    state = app_state(request)
    if state.phone.draining:  # a load balancer sends new calls to other replicas
        return Utf8JSONResponse({"status": "draining", "machines": state.machines.name}, status_code=503)
    # Liveness stays 200 (a broken bot is no reason to restart the dispatcher, and a balancer
    # that took every replica out while the store is down would turn a degraded deployment
    # into a dead one: docs/replicas.md); what is wrong is said.
    body: dict[str, object] = {"status": "ok", "machines": state.machines.name}
    if isinstance(state.machines, ShowsBotVariables):  # a phone call's bot needs its carrier's credentials
        body["bots_lack"] = lacking(state.machines.bot_variables())
    # The reason a bot failed is its own error text (a tenant's, and what a start body chose): an admin's.
    if state.reserve is not None and (detail := state.reserve.health(with_reason=_is_admin(request))) is not None:
        body["detail"] = detail
    if state.peers.by_name:  # several regions: which answer (a region down degrades none of the others)
        body["region"] = state.peers.regions.here
        # A peer's room, idle bots and demand are what only a signed peer reads at /regions/state
        # (a tenant's traffic, and when a neighbour is short): the deployment's load, which a client
        # key reads nowhere (/metrics, /status): an admin key's, as there.
        detailed = _is_admin(request)
        body["regions"] = {name: peer.to_json() if detailed else {"reachable": peer.reachable}
                           for name, peer in sorted(state.peers.by_name.items())}
    if health := state.replication.coordination.health():  # several replicas: their store's
        body["store"] = health
        if health["status"] != "ok":
            body["status"] = "degraded"
    return Utf8JSONResponse(body)


def _is_admin(request: Request) -> bool:
    """An admin key (a hash, no scrypt: a runtime key is a client's), or the one caller of a keyless
    local dispatcher, which reads all of it anyway."""
    settings = app_state(request).settings
    keyless = not (settings.api_key_hashes or settings.admin_key_hashes)
    return keyless or admin_key(settings, request.headers.get("authorization")) is not None


@router.get("/metrics", summary="Prometheus metrics", tags=["ops"])
async def prometheus(request: Request) -> Response:
    state = app_state(request)
    if not _is_admin(request):  # a keyless dispatcher's one local caller: all of it is theirs
        await identified(request)  # no key, or a wrong one: 401 as on every route
        raise ApiError(403, "admin_key_required", "/metrics holds every key's usage and spend and the deployment's "
                       "load: scrape it with an admin key (DISPATCHER_ADMIN_KEYS) as its bearer; a client key "
                       "reads its own key's figures at GET /usage", extra={})
    callers, evals = await state.sessions.active_by_release()
    if state.sip_edge_status is not None:  # the edges' gauges as they answer now (or within a few seconds)
        await state.sip_edge_status.read()
    return Response(state.metrics.render(callers, evals), media_type=CONTENT_TYPE)
