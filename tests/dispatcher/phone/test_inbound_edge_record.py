"""An inbound call's SIP edge, recorded at its start: the start that presents a listed edge's own credential
(`X-Voicefleet-Edge-Secret`, priced or not) records that edge as its session's (`sip-edge:<session>`), and the
edge routes take reports on the session from that edge alone. A store that does not answer refuses no start:
the call goes on, its record owed and written once the store answers (docs/sip.md#edge-credentials)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.phone.edge_secret import HEADER, EdgeSecret
from dispatcher.settings import Settings
from dispatcher.store.unavailable import StoreUnavailable

SECRET = "edge-control-secret-for-the-tests-0123456789"
A, B = "http://127.0.0.1:9", "http://127.0.0.1:10"  # two listed edges at ports nothing listens on
UNPRICED: dict[str, Any] = {"transport": "exotel", "body": {"call_id": "1@trunk"}}
PRICED: dict[str, Any] = {**UNPRICED, "sip_trunk": {"trunk": "twilio", "usd_per_minute": 0.0085}}
NOT_PLACED = {"outcome": "not_placed", "trunk": "twilio"}


def presenting(url: str) -> dict[str, str]:
    return {HEADER: EdgeSecret(SECRET).edge_credential(url)}


def bearer(url: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {EdgeSecret(SECRET).edge_credential(url)}"}


@pytest.fixture
async def app() -> AsyncIterator[FastAPI]:
    app = create_app(Settings(), env={"SIP_EDGE_URL": f"{A},{B}", "SIP_EDGE_SECRET": SECRET},
                     machines=LocalMachines(LocalSettings()), rooms=None)
    yield app
    await app.state.voicefleet.aclose()


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")


@pytest.mark.parametrize("start", [UNPRICED, PRICED])
async def test_an_inbound_start_through_an_edge_is_that_edge_s_call_alone(app: FastAPI, start: dict[str, Any]) -> None:
    async with client(app) as api:
        answer = await api.post("/start", json=start, headers=presenting(A))
        assert answer.status_code == 201, answer.text
        session_id = answer.json()["sessionId"]
        assert await app.state.voicefleet.trunk_calls.edges.recorded(session_id) == A
        by_b = await api.post(f"/edge/calls/{session_id}/outcome", json=NOT_PLACED, headers=bearer(B))
        by_a = await api.post(f"/edge/calls/{session_id}/outcome", json=NOT_PLACED, headers=bearer(A))
    assert (by_b.status_code, by_b.json()["error"]["code"]) == (403, "sip_edge_not_holding"), by_b.text
    assert by_a.status_code == 204, by_a.text  # its own call's report is taken


@pytest.mark.parametrize(("start", "headers", "edge_call"), [
    (UNPRICED, presenting(A), True), (PRICED, presenting(A), True), (UNPRICED, {}, False),
], ids=["edge-unpriced", "edge-priced", "client"])
async def test_a_call_token_says_whether_its_end_is_an_edge_s_to_tell(
        app: FastAPI, start: dict[str, Any], headers: dict[str, str], edge_call: bool) -> None:
    """Its session's timeline is marked so (`sip_inbound`, or a priced trunk's `telephony` line): its webhook
    and report wait for the edge's end (dispatcher/observability/sip_end.py)."""
    async with client(app) as api:
        answer = await api.post("/start", json=start, headers=headers)
    assert answer.status_code == 201, answer.text
    grant = app.state.voicefleet.phone.tokens.check(answer.json()["token"], "exotel")
    assert grant.edge_call is edge_call


async def test_a_start_without_an_edge_s_credential_is_no_edge_s_to_report_on(app: FastAPI) -> None:
    async with client(app) as api:
        answer = await api.post("/start", json=UNPRICED)  # a client's own call token: no edge presented itself
        assert answer.status_code == 201, answer.text
        session_id = answer.json()["sessionId"]
        reports = [await api.post(f"/edge/calls/{session_id}/outcome", json=NOT_PLACED, headers=bearer(url))
                   for url in (A, B)]
        status = await api.get(f"/edge/calls/{session_id}", headers=bearer(A))
    for refused in (*reports, status):
        assert refused.status_code == 404, refused.text
        assert refused.json()["error"] == {"code": "not_found", "message": f"no session {session_id}"}


@pytest.mark.parametrize("start", [UNPRICED, PRICED])
async def test_an_inbound_start_the_store_cannot_record_goes_on_and_is_recorded_once_it_answers(
        app: FastAPI, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, start: dict[str, Any]) -> None:
    records = app.state.voicefleet.trunk_calls.edges._records

    async def not_answering(*args: object) -> str:
        raise StoreUnavailable("the store did not answer: TimeoutError")

    monkeypatch.setattr(records, "first", not_answering)
    monkeypatch.setattr(records, "held", not_answering)
    async with client(app) as api:
        answers = [await api.post("/start", json=start, headers=presenting(A)) for _ in range(2)]
        monkeypatch.undo()  # the store answers again: the record it missed is owed to it
        assert answers[0].status_code == 201, answers[0].text
        session_id = answers[0].json()["sessionId"]
        assert await records.held("sip-edge:" + session_id) is None
        by_b = await api.post(f"/edge/calls/{session_id}/outcome", json=NOT_PLACED, headers=bearer(B))
        report = await api.post(f"/edge/calls/{session_id}/outcome", json=NOT_PLACED, headers=bearer(A))
    assert answers[1].status_code == 201, answers[1].text
    warned = [r for r in caplog.records if "started without recording its SIP edge" in r.getMessage()]
    assert len(warned) == 1, warned  # once a minute, not once a call
    assert "REDIS_URL" in warned[0].getMessage()
    assert (by_b.status_code, by_b.json()["error"]["code"]) == (403, "sip_edge_not_holding"), by_b.text
    assert report.status_code == 204, report.text  # the edge it came in at: its record, owed, written first
    assert await records.held("sip-edge:" + session_id) == f"{A} inbound"


async def test_an_inbound_start_a_full_memory_cannot_record_goes_on_never_told_to_retry(
        app: FastAPI, caplog: pytest.LogCaptureFixture) -> None:
    state = app.state.voicefleet
    await state.trunk_calls.took_inbound("vf_earlier", A)
    state.trunk_calls.edges._records._most = 1  # this replica's memory holds as many records as it may
    async with client(app) as api:
        answer = await api.post("/start", json=UNPRICED, headers=presenting(A))
    assert answer.status_code == 201, answer.text  # a full memory is no blink: a retry in 5 s would fare no better
    assert any("no REDIS_URL is set" in r.getMessage() for r in caplog.records)


async def test_an_edge_s_report_the_store_cannot_place_is_503_with_a_retry(
        app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    state = app.state.voicefleet
    await state.trunk_calls.took_inbound("vf_at_a", A)

    async def not_answering(key: str) -> str | None:
        raise StoreUnavailable("the store did not answer: TimeoutError")

    monkeypatch.setattr(state.trunk_calls.edges._records, "held", not_answering)
    async with client(app) as api:
        answer = await api.post("/edge/calls/vf_at_a/outcome", json=NOT_PLACED, headers=bearer(A))
    assert (answer.status_code, answer.json()["error"]["code"]) == (503, "sip_edge_unrecorded"), answer.text
    assert answer.headers["Retry-After"]  # the edge's reporter tries again on a 5xx


async def test_a_call_recorded_at_an_edge_no_longer_listed_takes_no_listed_edge_s_report(app: FastAPI) -> None:
    state = app.state.voicefleet
    await state.trunk_calls.edges.took_inbound("vf_at_c", "http://127.0.0.1:11", 600)  # C, since delisted
    async with client(app) as api:
        answer = await api.post("/edge/calls/vf_at_c/outcome", json=NOT_PLACED, headers=bearer(B))
    assert (answer.status_code, answer.json()["error"]["code"]) == (403, "sip_edge_not_holding"), answer.text


async def test_an_unlisted_edge_s_price_is_refused_naming_sip_edge_url(app: FastAPI) -> None:
    async with client(app) as api:
        answer = await api.post("/start", json=PRICED, headers=presenting("http://10.9.9.9:5080"))
        unpriced = await api.post("/start", json=UNPRICED, headers=presenting("http://10.9.9.9:5080"))
    assert (answer.status_code, answer.json()["error"]["code"]) == (403, "sip_edge_unlisted"), answer.text
    assert "SIP_EDGE_URL" in answer.json()["error"]["message"]
    assert unpriced.status_code == 201, unpriced.text  # a call token as a client's: recorded at no edge
    assert await app.state.voicefleet.trunk_calls.edges.recorded(unpriced.json()["sessionId"]) is None


async def test_a_calls_answered_seconds_are_taken_from_the_edge_it_came_in_at_alone(app: FastAPI) -> None:
    """What a call costs is the count of the edge that holds it: another listed edge's genuine credential is
    refused for it, as its reports are on the edge routes. (A carrier call's session is made once its stream
    opens; a session recorded at edge A as its start through A records it stands in for one here.)"""
    async with client(app) as api:
        answer = await api.post("/start", json={})
        assert answer.status_code == 201, answer.text
        session_id = answer.json()["session_id"]
        await app.state.voicefleet.trunk_calls.took_inbound(session_id, A)
        await app.state.voicefleet.sessions.timeline.settled()  # its start on its timeline, as long before its end
        told = {"by": "caller", "how": "bye", "answered_seconds": 61.0}
        by_b = await api.post(f"/sessions/{session_id}/sip_end", json=told, headers=presenting(B))
        by_a = await api.post(f"/sessions/{session_id}/sip_end", json=told, headers=presenting(A))
        await app.state.voicefleet.sessions.timeline.settled()
        events = await app.state.voicefleet.sessions.timeline.read(session_id)
        await api.delete(f"/sessions/{session_id}")
    assert (by_b.status_code, by_b.json()["error"]["code"]) == (403, "sip_edge_not_holding"), by_b.text
    assert by_a.status_code == 204, by_a.text
    assert [e.get("answered_seconds") for e in events if e["event"] == "sip_ended"] == [61.0]


async def test_an_edge_taken_out_of_sip_edge_url_prices_none_of_its_calls(app: FastAPI) -> None:
    """Its credential is still genuine, and the store may still name it for a call it took before: taken out of
    SIP_EDGE_URL (its host distrusted), it speaks for nothing."""
    gone = "http://127.0.0.1:11"
    async with client(app) as api:
        answer = await api.post("/start", json={})
        session_id = answer.json()["session_id"]
        await app.state.voicefleet.trunk_calls.edges.took_inbound(session_id, gone, 600)
        await app.state.voicefleet.sessions.timeline.settled()
        told = await api.post(f"/sessions/{session_id}/sip_end", headers=presenting(gone),
                              json={"by": "caller", "how": "bye", "answered_seconds": 1.0})
        await api.delete(f"/sessions/{session_id}")
    assert (told.status_code, told.json()["error"]["code"]) == (403, "sip_edge_unlisted"), told.text
