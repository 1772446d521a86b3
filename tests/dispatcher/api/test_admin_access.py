"""An admin key reaches a session another key started, on the record (dispatcher/api/admin_access.py):
the read is on the session audit trail before it is answered, and refused when it cannot be written;
a client key's own sessions are not audited, another client key still gets 404."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import httpx

from dispatcher.api.admin_auth import admin_key
from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.sessions.ids import new_session_id
from dispatcher.settings import Settings, hash_api_key
from dispatcher.store.client import StoreUnavailable
from tests.dispatcher.conftest import API_KEY, ClientFactory, _ClientContext
from tests.support.ports import free_port

ADMIN_KEY = "vf-admin-access-41c9e07b2d"
OTHER_KEY = "another-key-5d8a1f3c90"
MINE, ADMIN = {"Authorization": f"Bearer {API_KEY}"}, {"Authorization": f"Bearer {ADMIN_KEY}"}


class StoreDown:
    """The store's trail while the store does not answer: StoreTrail raises this (store/client.py)."""

    async def note(self, line: Mapping[str, Any]) -> None:
        raise StoreUnavailable("the store did not answer")

    async def history(self, limit: int) -> list[dict[str, Any]]:
        raise StoreUnavailable("the store did not answer")


def keys(make_api: ClientFactory) -> _ClientContext:
    return make_api(api_key_hashes=frozenset({hash_api_key(API_KEY), hash_api_key(OTHER_KEY)}),
                    admin_key_hashes=frozenset({hash_api_key(ADMIN_KEY)}))


async def started(api: httpx.AsyncClient) -> str:
    answer = await api.post("/start", json={}, headers=MINE)
    assert answer.status_code == 201, answer.text
    session_id: str = answer.json()["session_id"]
    return session_id


async def test_the_admins_reads_are_audited_and_the_owners_are_not(make_api: ClientFactory) -> None:
    async with keys(make_api) as api:
        session_id = await started(api)
        assert (await api.get(f"/sessions/{session_id}", headers=MINE)).status_code == 200
        assert (await api.get("/audit/sessions", headers=ADMIN)).json() == {"lines": []}
        assert (await api.get(f"/sessions/{session_id}/timeline", headers=ADMIN)).status_code == 200
        lines = (await api.get("/audit/sessions", headers=ADMIN)).json()["lines"]
        assert [(line["action"], line["session_id"]) for line in lines] == [("session.timeline", session_id)]
        other = await api.get(f"/sessions/{session_id}", headers={"Authorization": f"Bearer {OTHER_KEY}"})
        assert other.status_code == 404
        assert (await api.delete(f"/sessions/{session_id}", headers=MINE)).status_code in (202, 204)


async def test_a_read_that_cannot_be_recorded_is_refused(make_api: ClientFactory) -> None:
    context = keys(make_api)
    async with context as api:
        session_id = await started(api)
        state = context.app.state.voicefleet
        context.app.state.voicefleet = dataclasses.replace(state, session_audit=StoreDown())
        try:
            refused = await api.get(f"/sessions/{session_id}", headers=ADMIN)
            assert refused.status_code == 503 and refused.json()["error"]["code"] == "audit_unavailable"
            assert (await api.get(f"/sessions/{session_id}", headers=MINE)).status_code == 200  # the owner's own
        finally:
            context.app.state.voicefleet = state
        assert (await api.delete(f"/sessions/{session_id}", headers=MINE)).status_code in (202, 204)


async def test_an_admins_read_of_a_session_another_region_holds_is_relayed_and_a_strangers_is_not() -> None:
    # eu holds the session: us relays an admin's read, stop and timeline there (eu audits them, as
    # for a read asked of it directly); nothing listens at eu, so a relayed request is 503, not 404.
    urls = {"eu": "http://127.0.0.1:1", "us": "http://127.0.0.1:2"}
    env = {"REGION": "us", "REGIONS": ",".join(f"{n}={u}" for n, u in urls.items()), "REGION_SECRET": "s" * 32,
           "DISPATCHER_API_KEYS": f"{API_KEY},{OTHER_KEY}", "DISPATCHER_ADMIN_KEYS": ADMIN_KEY,
           "REDIS_URL": f"redis://:pw-{'p' * 32}@127.0.0.1:{free_port()}/0", "REDIS_MESSAGE_SECRET": "m" * 32}
    app = create_app(Settings.from_env(env), env=env, machines=LocalMachines(LocalSettings(bot_command=("true",))),
                     rooms=None)
    owner = app.state.voicefleet.auth.identify(f"Bearer {API_KEY}")
    held_at_eu = new_session_id(owner.owner_key, None, region="eu")
    stranger = {"Authorization": f"Bearer {OTHER_KEY}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=urls["us"]) as api:
        for method, route in [("GET", ""), ("GET", "/timeline"), ("DELETE", "")]:
            relayed = await api.request(method, f"/sessions/{held_at_eu}{route}", headers=ADMIN)
            assert relayed.status_code == 503 and relayed.json()["error"]["code"] == "region_unreachable"
            assert (await api.request(method, f"/sessions/{held_at_eu}{route}", headers=stranger)).status_code == 404
        for route in ["/events", "/offer", "/ice", "/artifacts", "/timeline/"]:  # an admin reads no stream or media
            assert (await api.get(f"/sessions/{held_at_eu}{route}", headers=ADMIN)).status_code == 404, route


async def test_an_admins_stop_of_a_session_its_own_key_started_is_audited_too(make_api: ClientFactory) -> None:
    # The dashboard's stop says it is on the audit trail under the admin key: so is a stop of the
    # admin's own session (a release's smoke session, a call it started); its reads stay unaudited.
    async with keys(make_api) as api:
        answer = await api.post("/start", json={}, headers=ADMIN)
        assert answer.status_code == 201, answer.text
        session_id = answer.json()["session_id"]
        assert (await api.get(f"/sessions/{session_id}", headers=ADMIN)).status_code == 200
        assert (await api.delete(f"/sessions/{session_id}", headers=ADMIN)).status_code in (202, 204)
        lines = (await api.get("/audit/sessions", headers=ADMIN)).json()["lines"]
        admin = admin_key(Settings(admin_key_hashes=frozenset({hash_api_key(ADMIN_KEY)})), ADMIN["Authorization"])
        assert [(line["action"], line["session_id"], line["by"]) for line in lines] == [
            ("session.stop", session_id, admin)], lines
