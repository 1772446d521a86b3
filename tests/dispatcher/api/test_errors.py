"""Bad input gets a clear JSON 4xx (never a 500, never a traceback)."""

from __future__ import annotations

import pytest

from dispatcher.sessions.ids import new_session_id
from dispatcher.settings import hash_api_key
from tests.dispatcher.conftest import API_KEY


def assert_error(response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and "Traceback" not in response.text
    if code:
        assert error["code"] == code


async def test_malformed_json_is_400(api):
    response = await api.post("/start", content=b'{"body": ', headers={"Content-Type": "application/json"})
    assert_error(response, 400, "invalid_json")


@pytest.mark.parametrize("payload", [{"body": "text"}, {"body": [1, 2]}, {"body": {}, "extra": 1}, [1], "x"])
async def test_wrong_types_are_422(api, payload):
    assert_error(await api.post("/start", json=payload), 422, "invalid_request")


async def test_a_body_over_4_kb_is_413(api):
    response = await api.post("/start", json={"body": {"blob": "x" * 5000}})
    assert_error(response, 413, "body_too_large")


async def test_a_request_over_the_limit_is_413_before_it_is_read(api):
    oversized = b"{" + b" " * 70_000 + b"}"
    response = await api.post("/start", content=oversized, headers={"Content-Type": "application/json"})
    assert_error(response, 413, "payload_too_large")


async def test_a_chunked_request_over_the_limit_is_413(api):
    async def chunks():
        for _ in range(10):
            yield b" " * 10_000

    response = await api.post("/start", content=chunks(), headers={"Content-Type": "application/json"})
    assert_error(response, 413, "payload_too_large")


async def test_oversized_headers_are_431(api):
    assert_error(await api.get("/healthz", headers={"X-Padding": "p" * 9000}), 431, "headers_too_large")


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "tab\tkey"])
async def test_a_malformed_idempotency_key_is_400(api, key):
    response = await api.post("/start", json={}, headers={"Idempotency-Key": key})
    assert_error(response, 400, "invalid_idempotency_key")


@pytest.mark.parametrize("session_id", ["0" * 24, "not-a-session", "A" * 24, "0" * 500])
async def test_unknown_or_malformed_session_ids_are_404(api, session_id):
    assert_error(await api.get(f"/sessions/{session_id}"), 404, "not_found")
    assert_error(await api.post(f"/sessions/{session_id}/api/offer", json={"sdp": "v=0", "type": "offer"}), 404)


@pytest.mark.parametrize("session_id", ["not-a-session", "A" * 24, "0" * 500])
async def test_a_delete_of_a_malformed_session_id_is_404(api, session_id):
    assert_error(await api.delete(f"/sessions/{session_id}"), 404, "not_found")


async def test_a_delete_of_a_session_that_never_started_is_404(api):
    # The caller's own tag, but no start ever made it: no timeline, no machine (a typo is not a stop).
    # An ended session's second DELETE stays 204 (tests/dispatcher/api/test_delete_status.py).
    owner_key = api._transport.app.state.voicefleet.auth.identify(None).owner_key
    session_id = new_session_id(owner_key, 'never-started')
    assert_error(await api.delete(f"/sessions/{session_id}"), 404, "not_found")


async def test_an_invalid_offer_is_422(api):
    session_id = (await api.post("/start", json={})).json()["session_id"]
    assert_error(await api.post(f"/sessions/{session_id}/api/offer", json={"sdp": "v=0", "type": "answer"}), 422)
    assert_error(await api.post(f"/sessions/{session_id}/api/offer", json={"type": "offer"}), 422)


async def test_wait_accepts_only_started(api):
    refused = await api.post("/start?wait=forever", json={})
    assert_error(refused, 422, "invalid_request")
    assert "`started`" in refused.json()["error"]["message"]  # what to send instead


async def test_unknown_routes_and_methods_are_json(api):
    assert_error(await api.get("/nope"), 404)
    assert_error(await api.put("/start", json={}), 405)


class TestAuthentication:
    @pytest.fixture
    async def secured(self, make_api):
        async with make_api(api_key_hashes=frozenset({hash_api_key(API_KEY)})) as client:
            yield client

    async def test_healthz_needs_no_key(self, secured):
        assert (await secured.get("/healthz")).status_code == 200

    @pytest.mark.parametrize("path", ["/start", "/connect", "/sessions/" + "0" * 24, "/metrics"])
    async def test_calls_without_a_key_are_401(self, secured, path):
        method = secured.post if path in ("/start", "/connect") else secured.get
        response = await method(path)
        assert_error(response, 401, "unauthorized")

    @pytest.mark.parametrize("header", ["Bearer wrong-key", "Basic dXNlcjpwYXNz", "Bearer ", API_KEY])
    async def test_a_wrong_or_malformed_key_is_401(self, secured, header):
        assert_error(await secured.post("/start", json={}, headers={"Authorization": header}), 401, "unauthorized")

    async def test_the_right_key_starts_a_session(self, secured):
        response = await secured.post("/start", json={}, headers={"Authorization": f"Bearer {API_KEY}"})
        assert response.status_code == 201

    async def test_the_page_is_served_without_a_key(self, secured):
        assert (await secured.get("/")).status_code == 200


async def test_responses_carry_security_headers(api):
    response = await api.get("/healthz")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
