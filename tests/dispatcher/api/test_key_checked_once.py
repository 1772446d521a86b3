"""Each request's API key is checked once, however many of its route's dependencies ask who is
calling (the router's and the route's own): a start pays for one digest of its key, not two. The
sessions router declares the caller on each route rather than on itself (FastAPI would solve both):
every route of the key-authenticated routers must still reach the key check."""

from __future__ import annotations

import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from dispatcher.api.auth import Authenticator
from dispatcher.api.dependencies import identified
from dispatcher.api.routers import offers, runner_offer, sessions, timeline
from dispatcher.settings import hash_api_key
from tests.dispatcher.conftest import API_KEY


async def test_a_start_a_read_and_a_stop_each_check_the_key_once(make_api, monkeypatch) -> None:
    checked: list[str | None] = []
    identify = Authenticator.identify

    def counting(self: Authenticator, authorization: str | None):  # type: ignore[no-untyped-def]
        checked.append(authorization)
        return identify(self, authorization)

    monkeypatch.setattr(Authenticator, "identify", counting)
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


def _asks_for_the_key(dependant: Dependant) -> bool:
    return any(d.call in KEY_CHECKS or _asks_for_the_key(d) for d in dependant.dependencies)


@pytest.mark.parametrize("router", [sessions.router, timeline.router, offers.router, runner_offer.router])
def test_every_route_of_a_key_router_checks_the_key(router) -> None:  # type: ignore[no-untyped-def]
    routes = [route for route in router.routes if isinstance(route, APIRoute)]
    assert routes
    for route in routes:
        assert _asks_for_the_key(route.dependant), f"{sorted(route.methods)} {route.path} reads no API key"
