"""Capacity changed at runtime through `PATCH /capacity` (dispatcher/api/routers/capacity.py), in one
real dispatcher app: admin only, audited (who, what, old → new), applied to the next start, a cap
below what runs stops nothing, and `null` returns a value to its setting."""

from __future__ import annotations

import httpx
import pytest

from dispatcher.settings import hash_api_key
from tests.dispatcher.conftest import API_KEY, ClientFactory, _ClientContext

ADMIN_KEY = "vf-runtime-admin-7c1e90ad42"
MINE, ADMIN = {"Authorization": f"Bearer {API_KEY}"}, {"Authorization": f"Bearer {ADMIN_KEY}"}


def keyed(make_api: ClientFactory, **settings: object) -> _ClientContext:
    return make_api(api_key_hashes=frozenset({hash_api_key(API_KEY)}),
                    admin_key_hashes=frozenset({hash_api_key(ADMIN_KEY)}), **settings)


async def start(api: httpx.AsyncClient, headers: dict[str, str] = MINE) -> httpx.Response:
    return await api.post("/start", json={}, headers=headers)


async def test_a_lowered_cap_refuses_new_starts_and_stops_nothing_that_runs(make_api: ClientFactory) -> None:
    async with keyed(make_api, max_concurrent_sessions=5) as api:
        running = [(await start(api)).json()["session_id"] for _ in range(2)]
        changed = await api.patch("/capacity", json={"sessions": 1}, headers=ADMIN)
        assert changed.status_code == 200, changed.text
        assert changed.json()["values"]["sessions"] == {"value": 1, "setting": 5, "runtime": 1, "in_use": 2}
        refused = await start(api)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "at_capacity"
        for session_id in running:  # nothing running was stopped
            assert (await api.get(f"/sessions/{session_id}", headers=MINE)).json()["status"] != "stopped"
        back = await api.patch("/capacity", json={"sessions": None}, headers=ADMIN)
        assert back.json()["values"]["sessions"]["value"] == 5
        assert (await start(api)).status_code == 201


async def test_each_change_is_audited_with_who_old_and_new(make_api: ClientFactory) -> None:
    async with keyed(make_api, max_concurrent_sessions=5) as api:
        await api.patch("/capacity", json={"sessions": 200, "provider.local": 150}, headers=ADMIN)
        await api.patch("/capacity", json={"sessions": 300}, headers=ADMIN)
        lines = (await api.get("/audit/runtime", headers=ADMIN)).json()["lines"]
        assert [(line["action"], line["name"], line["old"], line["new"]) for line in lines] == [
            ("capacity.set", "sessions", 200, 300), ("capacity.set", "provider.local", None, 150),
            ("capacity.set", "sessions", None, 200)]  # newest first; one change's lines in its body's order
        assert all(line["by"].startswith("admin-") and line["at"] > 0 for line in lines)
        # the provider's cap is the lower of the two
        assert (await api.get("/capacity", headers=ADMIN)).json()["values"]["provider.local"]["value"] == 150


async def test_only_an_admin_key_reads_or_changes_capacity(make_api: ClientFactory) -> None:
    async with keyed(make_api) as api:
        assert (await api.get("/capacity", headers=MINE)).status_code == 403
        refused = await api.patch("/capacity", json={"sessions": 1}, headers=MINE)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "admin_key_required"
        assert (await api.patch("/capacity", json={"sessions": 1})).status_code == 401


async def test_bad_changes_are_one_line_each(make_api: ClientFactory) -> None:
    async with keyed(make_api) as api:
        cases = {"sessionz": 3, "key.nobody": 0.5, "provider.fly": 3}
        for name, value in cases.items():
            answer = await api.patch("/capacity", json={name: value}, headers=ADMIN)
            assert answer.status_code == 400, answer.text
            assert "\n" not in answer.json()["error"]["message"]
        for body in ({"sessions": -1}, {"sessions": "lots"}, {"sessions": True}, {}):
            answer = await api.patch("/capacity", json=body, headers=ADMIN)
            assert answer.status_code in (400, 422), answer.text
        assert (await api.get("/audit/runtime", headers=ADMIN)).json()["lines"] == []


async def test_a_keys_own_share_applies_to_its_next_start(make_api: ClientFactory) -> None:
    named = {hash_api_key("k-one-1234567890abcdef"): "one", hash_api_key("k-two-1234567890abcdef"): "two"}
    async with make_api(api_key_hashes=frozenset(named), api_key_names=tuple(named.items()),
                        admin_key_hashes=frozenset({hash_api_key(ADMIN_KEY)}), max_concurrent_sessions=4,
                        bot_channel_token="runtime-capacity-deployment-secret-0123456789") as api:
        one = {"Authorization": "Bearer k-one-1234567890abcdef"}
        assert (await start(api, one)).status_code == 201
        assert (await start(api, one)).status_code == 201  # KEY_SESSION_SHARE 0.5 of 4
        assert (await start(api, one)).status_code == 429
        changed = await api.patch("/capacity", json={"key.one": 1.0}, headers=ADMIN)
        assert changed.status_code == 200, changed.text
        assert (await start(api, one)).status_code == 201
        await api.patch("/capacity", json={"key.one": 0.25}, headers=ADMIN)
        refused = await start(api, one)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "key_at_capacity"


async def test_the_reserves_bounds_reach_its_planner(make_api: ClientFactory) -> None:
    async with keyed(make_api) as api:
        transport = api._transport
        assert isinstance(transport, httpx.ASGITransport)
        reserve = transport.app.state.voicefleet.reserve  # type: ignore[attr-defined]
        if reserve is None or not reserve.settings.enabled:
            pytest.skip("this environment runs no local reserve")
        changed = await api.patch("/capacity", json={"reserve.max": 3, "reserve.target": 2}, headers=ADMIN)
        assert changed.status_code == 200, changed.text
        assert (reserve.settings.min_idle, reserve.settings.max_idle) == (2, 2)
        assert reserve.planning.sizer.settings is reserve.settings
        await api.patch("/capacity", json={"reserve.target": None}, headers=ADMIN)
        assert reserve.settings.max_idle == 3


async def test_a_damaged_record_in_the_store_falls_back_to_the_settings(make_api: ClientFactory) -> None:
    """The store's record is read, not trusted: a value `PATCH /capacity` would refuse (written by
    something else, or damaged) is dropped and its setting applies; starts go on, no 500."""
    context = keyed(make_api, max_concurrent_sessions=5)
    async with context as api:
        runtime = context.app.state.voicefleet.runtime
        damaged = {"version": 7, "keys": {}, "capacity": {"sessions": "lots",
                                                           "key.team": 5, "reserve.max": "x"}}
        assert await runtime._book.write(damaged, None)
        await runtime.refresh()
        assert (await start(api)).status_code == 201
        shown = (await api.get("/capacity", headers=ADMIN)).json()["values"]
        assert shown["sessions"]["value"] == 5, shown
        changed = await api.patch("/capacity", json={"sessions": 3}, headers=ADMIN)  # a change drops the rest
        assert changed.status_code == 200, changed.text
        assert (await runtime._book.read())["capacity"] == {"sessions": 3}
