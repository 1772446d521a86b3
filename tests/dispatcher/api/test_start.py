"""POST /start: the happy path, idempotency and the concurrency cap."""

from __future__ import annotations

import asyncio
import os

from dispatcher.settings import hash_api_key
from tests.dispatcher.conftest import API_KEY


async def test_start_returns_201_with_session_id_status_and_offer_url(api):
    response = await api.post("/start", json={"body": {"persona": "parrot"}})
    assert response.status_code == 201
    session = response.json()
    assert len(session["session_id"]) == 24
    assert session["status"] in ("starting", "started")
    assert session["offer_url"] == f"/sessions/{session['session_id']}/api/offer"


async def test_start_without_a_body_is_accepted(api):
    response = await api.post("/start")
    assert response.status_code == 201


async def test_wait_started_returns_once_the_bot_is_ready(api):
    response = await api.post("/start?wait=started", json={})
    assert response.status_code == 201
    assert response.json()["status"] == "started"


async def test_same_idempotency_key_and_body_replays_the_same_session(api):
    headers = {"Idempotency-Key": "order-42"}
    first = await api.post("/start", json={"body": {"a": 1}}, headers=headers)
    second = await api.post("/start", json={"body": {"a": 1}}, headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["session_id"] == second.json()["session_id"]


async def test_the_idempotency_key_header_is_read_whatever_its_case(api):
    first = await api.post("/start", json={}, headers={"Idempotency-Key": "order-44"})
    again = await api.post("/start", json={}, headers={"idempotency-key": "order-44"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["session_id"] == again.json()["session_id"]


async def test_same_idempotency_key_with_another_body_is_a_conflict(api):
    headers = {"Idempotency-Key": "order-43"}
    await api.post("/start", json={"body": {"a": 1}}, headers=headers)
    response = await api.post("/start", json={"body": {"a": 2}}, headers=headers)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_conflict"


async def test_parallel_retries_with_one_idempotency_key_start_one_bot(api):
    headers = {"Idempotency-Key": "burst-1"}
    responses = await asyncio.gather(*(api.post("/start", json={}, headers=headers) for _ in range(8)))
    assert sorted(r.status_code for r in responses) == [200] * 7 + [201]
    assert len({r.json()["session_id"] for r in responses}) == 1


async def test_idempotency_keys_are_scoped_per_api_key(make_api):
    second_key = "another-key-987654321"
    context = make_api(api_key_hashes=frozenset({hash_api_key(API_KEY), hash_api_key(second_key)}))
    async with context as api:
        one, two = [
            await api.post("/start", json={}, headers={"Idempotency-Key": "k", "Authorization": f"Bearer {key}"})
            for key in (API_KEY, second_key)
        ]
    assert (one.status_code, two.status_code) == (201, 201)
    assert one.json()["session_id"] != two.json()["session_id"]


async def test_a_parallel_burst_past_the_cap_gets_429_with_retry_after(make_api):
    async with make_api(max_concurrent_sessions=3) as api:
        responses = await asyncio.gather(*(api.post("/start", json={}) for _ in range(12)))
        codes = sorted(r.status_code for r in responses)
        refused = [r for r in responses if r.status_code == 429]
        assert codes == [201] * 3 + [429] * 9
        assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
        assert all(r.json()["error"]["code"] == "at_capacity" for r in refused)


async def test_an_ended_session_frees_its_slot(make_api):
    async with make_api(max_concurrent_sessions=1) as api:
        first = (await api.post("/start", json={})).json()["session_id"]
        assert (await api.post("/start", json={})).status_code == 429
        assert (await api.delete(f"/sessions/{first}")).status_code == 204
        assert (await api.post("/start", json={})).status_code == 201


async def test_the_body_reaches_the_bot_in_its_environment_not_its_command_line(make_api, tmp_path, monkeypatch):
    monkeypatch.setenv("STANDIN_RECORD_DIR", str(tmp_path))
    monkeypatch.setenv("DISPATCHER_API_KEYS", "should-not-leak")
    async with make_api() as api:
        session = (await api.post("/start?wait=started", json={"body": {"secret_plan": "x"}})).json()
    record = (tmp_path / f"{session['session_id']}.json").read_text()
    assert '"body": "{\\"secret_plan\\":\\"x\\"}"' in record
    assert "secret_plan" not in record.split('"body"')[0]  # not in argv
    assert '"has_dispatcher_keys": false' in record
    assert os.environ["DISPATCHER_API_KEYS"] == "should-not-leak"
