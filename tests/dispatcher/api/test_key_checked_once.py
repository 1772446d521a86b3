"""Each request's API key is checked once, however many of its route's dependencies ask who is
calling (the router's and the route's own): a start pays for one digest of its key, not two."""

from __future__ import annotations

import httpx

from dispatcher.api.auth import Authenticator
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
