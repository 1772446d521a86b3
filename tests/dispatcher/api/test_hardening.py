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


async def test_no_cors_headers_by_default(api):
    response = await api.options(
        "/start", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in response.headers


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
