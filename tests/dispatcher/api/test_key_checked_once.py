"""Each request's API key is checked once, however many of its route's dependencies ask who is
calling: a start pays for one digest of its key, not two. The sessions router declares the caller
on each route rather than on itself (FastAPI would solve both): every route of the key routers must
still read the key, and first; every other router says how it knows its caller instead."""

from __future__ import annotations

import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute

from dispatcher.api.auth import Authenticator
from dispatcher.api.dependencies import identified
from dispatcher.api.mount import ROUTERS
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
    exotel_connect,
    keys,
    offers,
    ops,
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
from dispatcher.settings import hash_api_key
from tests.dispatcher.conftest import API_KEY


async def test_a_start_a_read_and_a_stop_each_check_the_key_once(make_api, monkeypatch) -> None:
    checked: list[str | None] = []
    configured = Authenticator._configured  # the digest of a key and its compare with every configured one

    def counting(self: Authenticator, token: str):  # type: ignore[no-untyped-def]
        checked.append(token)
        return configured(self, token)

    monkeypatch.setattr(Authenticator, "_configured", counting)
    async with make_api(api_key_hashes=frozenset({hash_api_key(API_KEY)})) as api:
        assert isinstance(api, httpx.AsyncClient)
        api.headers["Authorization"] = f"Bearer {API_KEY}"
        checked.clear()
        started = await api.post("/start", json={})
        assert started.status_code == 201 and len(checked) == 1, checked
        session = started.json()["session_id"]
        for method, path in (("GET", f"/sessions/{session}"), ("GET", f"/sessions/{session}/timeline"),
                             ("DELETE", f"/sessions/{session}")):
            checked.clear()
            answered = await api.request(method, path)
            assert answered.status_code < 300 and len(checked) == 1, (path, answered.status_code, checked)


KEY_CHECKS = (identified, sessions.authenticated)  # the second calls the first, as a span of its own
KEY_ROUTERS = (sessions.router, timeline.router, offers.router, runner_offer.router, connect_hint.router,
               sip_end.router, transfer.router, sip_eval_tokens.router, whatsapp_eval.router, campaigns.router)
# Routers that prove their caller otherwise: the bot channel's token, a carrier's or Daily's
# signature, the regions' secret, a health check that needs none and /metrics (checked in the route),
# the admin keys (releases, status, the audit trails, capacity and runtime keys: checked in each route,
# dispatcher/api/admin_auth.py), an admin key or a client's (the sessions' listing, the usage, and a session's
# artifacts, checked in the route; their files and a bot's recording parts: a signed path,
# dispatcher/artifacts/signed_paths.py), a client's key or the SIP edge's secret (`POST /calls`, the key in
# its route; the edge's routes for its calls, the edge's own credential), Meta's signature (WhatsApp's webhook),
# Twilio's or Telnyx's signature and the session's MAC in the URL (the callbacks of a call placed through them, and
# of a warm transfer's call to the person; Plivo's for its warm transfer's), the Exotel credential's HMAC in the
# URL (the flow's Connect applet), Daily's webhook signature (a warm transfer's dial-out events).
OTHERWISE = (bots.router, carriers.router, webhooks.router, daily_dialin.router, daily_webhooks.router, ops.router,
             regions.router, releases.router, status.router, session_list.router, audit.router, artifacts.router,
             capacity.router, keys.router, usage.router, trunk_calls.router, whatsapp.router, twilio_dial.router,
             telnyx_dial.router, twilio_warm.router, telnyx_warm.router, plivo_warm.router, exotel_connect.router)


def _asks_for_the_key(dependency: Dependant) -> bool:
    return dependency.call in KEY_CHECKS or any(_asks_for_the_key(d) for d in dependency.dependencies)


def test_every_router_is_a_key_router_or_says_how_it_checks_callers() -> None:
    assert set(map(id, ROUTERS)) == set(map(id, KEY_ROUTERS + OTHERWISE))


@pytest.mark.parametrize(("router", "admitted"), [(status.router, status.admitted), (audit.router, audit.admitted),
                                                  (capacity.router, capacity.admitted),
                                                  (keys.router, capacity.admitted)])
def test_every_status_and_audit_route_checks_the_admin_key_first(router, admitted) -> None:  # type: ignore[no-untyped-def]
    assert router.routes
    for route in router.routes:
        assert isinstance(route, APIRoute)
        assert [d.call for d in route.dependant.dependencies[:1]] == [admitted], route.path


@pytest.mark.parametrize("router", KEY_ROUTERS)
def test_every_route_of_a_key_router_checks_the_key_first(router) -> None:  # type: ignore[no-untyped-def]
    assert router.routes
    for route in router.routes:
        assert isinstance(route, APIRoute | APIWebSocketRoute), f"{route!r}: a route FastAPI solves no dependency of"
        first = route.dependant.dependencies[:1]
        # First: dependencies run in the order declared, and nothing may run for a caller not yet known.
        assert first and _asks_for_the_key(first[0]), f"{route.path} does not read the API key first"
