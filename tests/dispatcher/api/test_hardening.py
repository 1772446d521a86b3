"""Per-key rate limit and the CORS allow-list."""

from __future__ import annotations

import pytest

from dispatcher.settings import Settings, SettingsError, hash_api_key
from tests.dispatcher.conftest import API_KEY


async def test_a_key_past_its_start_rate_gets_429_with_retry_after(make_api):
    async with make_api(start_rate_per_key=0.01, start_burst_per_key=2, max_concurrent_sessions=10) as api:
        codes = [(await api.post("/start", json={})).status_code for _ in range(3)]
        refused = await api.post("/start", json={})
    assert codes == [201, 201, 429]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) > 1


async def test_the_rate_limit_is_per_key(make_api):
    other = "other-key-1234567890"
    context = make_api(
        api_key_hashes=frozenset({hash_api_key(API_KEY), hash_api_key(other)}),
        start_rate_per_key=0.01,
        start_burst_per_key=1,
    )
    async with context as api:
        first = await api.post("/start", json={}, headers={"Authorization": f"Bearer {API_KEY}"})
        again = await api.post("/start", json={}, headers={"Authorization": f"Bearer {API_KEY}"})
        other_key = await api.post("/start", json={}, headers={"Authorization": f"Bearer {other}"})
    assert (first.status_code, again.status_code, other_key.status_code) == (201, 429, 201)


PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}


@pytest.mark.parametrize("machines", ["local", "ecs"])
async def test_no_cors_headers_for_another_site_by_default_and_the_refusal_names_the_setting(make_api, machines):
    async with make_api(machines=machines) as api:
        response = await api.options("/start", headers={"Origin": "https://evil.example", **PREFLIGHT})
    assert "access-control-allow-origin" not in response.headers
    assert response.status_code == 403 and response.json()["error"]["code"] == "cors_origin_not_allowed"
    assert "CORS_ALLOW_ORIGINS=https://evil.example" in response.json()["error"]["message"]


@pytest.mark.parametrize("origin", ["http://localhost:5173", "http://127.0.0.1:3000", "http://[::1]:5173",
                                    "http://localhost"])
async def test_a_local_dispatcher_allows_a_dev_server_on_any_loopback_port(make_api, origin):
    async with make_api(machines="local") as api:
        preflight = await api.options("/start", headers={"Origin": origin, **PREFLIGHT})
        start = await api.post("/start", json={}, headers={"Origin": origin})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == origin
    assert start.status_code == 201 and start.headers["access-control-allow-origin"] == origin


@pytest.mark.parametrize("origin", ["http://localhost.evil.example:5173", "https://localhost:5173.evil.example",
                                    "http://127.0.0.1.nip.io:5173", "null"])
async def test_only_loopback_origins_are_allowed_locally_and_a_cloud_allows_none_of_them(make_api, origin):
    async with make_api(machines="local") as api:
        refused = await api.options("/start", headers={"Origin": origin, **PREFLIGHT})
    async with make_api(machines="ecs") as api:
        cloud = await api.options("/start", headers={"Origin": "http://localhost:5173", **PREFLIGHT})
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
    assert cloud.status_code == 403 and "access-control-allow-origin" not in cloud.headers
    if origin == "null":
        assert "serve the page over http(s)" in refused.json()["error"]["message"]


async def test_an_allowed_origin_gets_cors_headers_and_others_do_not(make_api):
    async with make_api(cors_allow_origins=("https://app.example.com",)) as api:
        preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
        allowed = await api.options("/start", headers={"Origin": "https://app.example.com", **preflight})
        denied = await api.options("/start", headers={"Origin": "https://evil.example", **preflight})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "access-control-allow-origin" not in denied.headers


@pytest.mark.parametrize("value", ["*", "app.example.com", "https://a.example, *"])
def test_cors_origins_must_be_explicit(value):
    with pytest.raises(SettingsError, match="CORS_ALLOW_ORIGINS"):
        Settings.from_env({"CORS_ALLOW_ORIGINS": value})
