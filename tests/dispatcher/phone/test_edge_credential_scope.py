"""A hostile review of each SIP edge's own credential (dispatcher/phone/edge_secret.py): what one edge's
credential must not reach: a session its edge holds no call of, a price once its edge is no longer listed, a
call while the store cannot say which edge holds it (docs/sip.md#edge-credentials)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.phone.edge_secret import HEADER, EdgeSecret
from dispatcher.settings import Settings, SettingsError
from dispatcher.store.unavailable import StoreUnavailable
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_ENV
from tests.support.dispatcher_server import in_process

SECRET = "edge-control-secret-for-the-tests-0123456789"
A, B = "http://127.0.0.1:9", "http://127.0.0.1:10"  # two listed edges at ports nothing listens on
PRICED: dict[str, Any] = {"transport": "exotel", "body": {"call_id": "1@trunk"},
                          "sip_trunk": {"trunk": "twilio", "usd_per_minute": 9.99}}


def bearer(url: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {EdgeSecret(SECRET).edge_credential(url)}"}


async def test_a_credential_of_an_edge_sip_edge_url_does_not_list_sets_no_price() -> None:
    app = create_app(Settings(), env={"SIP_EDGE_URL": A, "SIP_EDGE_SECRET": SECRET},
                     machines=LocalMachines(LocalSettings()), rooms=None)
    delisted = {HEADER: EdgeSecret(SECRET).edge_credential("http://10.9.9.9:5080")}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as api:
        answer = await api.post("/start", json=PRICED, headers=delisted)
        if answer.status_code == 201:
            await api.delete(f"/sessions/{answer.json()['sessionId']}")
    await app.state.voicefleet.aclose()
    assert answer.status_code == 403, answer.text  # as the edge routes answer it: 403 sip_edge_unlisted


async def test_an_edge_s_credential_ends_and_prices_no_session_that_is_no_call_of_its_own(
        standin_mode: Callable[[str], None]) -> None:
    standin_mode("serve")
    machines = LocalMachines(LocalSettings(bot_command=STANDIN_BOT, bot_env=STANDIN_ENV))
    env = {"SIP_EDGE_URL": f"{A},{B}", "SIP_EDGE_SECRET": SECRET, "RESERVE_MAX_IDLE": "0"}
    app = create_app(Settings(), env=env, machines=machines, rooms=None)
    async with in_process(app) as running:
        api = running.client
        start = await api.post("/start", json={})  # a client's own web session: no SIP edge ever held it
        assert start.status_code == 201, start.text
        session_id = start.json()["session_id"]
        leg = {"event": "answered", "trunk": "twilio", "direction": "outbound", "usd_per_minute": 10.0,
               "increment_seconds": 60, "time_limit_seconds": 86_400}
        billed = await api.post(f"/edge/calls/{session_id}/bridged", json=leg, headers=bearer(B))
        ended = await api.post(f"/edge/calls/{session_id}/outcome", json={"outcome": "busy", "trunk": "twilio"},
                               headers=bearer(B))
        status = (await api.get(f"/sessions/{session_id}")).json().get("status")
        await api.delete(f"/sessions/{session_id}")
    assert billed.status_code in (403, 404), billed.text
    assert ended.status_code in (403, 404), ended.text
    assert status not in ("ended", "stopping"), status


async def test_a_store_that_does_not_answer_lets_no_edge_report_on_another_edge_s_call(
        monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(Settings(), env={"SIP_EDGE_URL": f"{A},{B}", "SIP_EDGE_SECRET": SECRET},
                     machines=LocalMachines(LocalSettings()), rooms=None)
    state = app.state.voicefleet
    await state.trunk_calls.edges.claim("vf_at_a", A, 600, "token", needed=True)
    records = state.trunk_calls.edges._records

    async def not_answering(key: str) -> str | None:
        raise StoreUnavailable("the store did not answer: TimeoutError")

    monkeypatch.setattr(records, "held", not_answering)  # a read that times out; the record is still there
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as api:
        by_b = await api.post("/edge/calls/vf_at_a/outcome", json={"outcome": "busy", "trunk": "far"},
                              headers=bearer(B))
    await state.aclose()
    assert by_b.status_code in (403, 503), by_b.text  # refused, or "cannot tell which edge holds it: retry"


def test_an_edge_url_longer_than_a_credential_names_is_a_settings_error_naming_it() -> None:
    long_url = "http://" + "a" * 600 + ":5080"
    try:
        app = create_app(Settings(), env={"SIP_EDGE_URL": long_url, "SIP_EDGE_SECRET": SECRET},
                         machines=LocalMachines(LocalSettings()), rooms=None)
    except SettingsError as exc:
        assert "SIP_EDGE_URL" in str(exc)  # noqa: PT017 - the message is what is checked
        return
    except ValueError as exc:
        raise AssertionError(f"a bare {type(exc).__name__}: {exc}") from None
    del app
    raise AssertionError("an edge URL no credential can be derived for was taken")
