"""A page of another origin changes nothing, whatever its body: the rule, then through the app."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dispatcher.api.cross_site import cross_site_refusal
from dispatcher.api.origins import LOOPBACK_ORIGIN, AllowedOrigins
from tests.dispatcher.api.test_releases_api import dispatcher

LOCAL = AllowedOrigins(frozenset({"https://app.example.com"}), re.compile(LOOPBACK_ORIGIN))
CLOUD = AllowedOrigins(frozenset({"https://app.example.com"}), None)
HOST = "127.0.0.1:7860"


def refusal(allowed: AllowedOrigins, host: str = HOST, **headers: str) -> str | None:
    sent = {b"host": host.encode(), **{k.replace("_", "-").encode(): v.encode() for k, v in headers.items()}}
    return cross_site_refusal(sent, allowed)


@pytest.mark.parametrize(("origin", "site"), [
    ("http://attacker.localhost:5000", "same-site"), ("https://evil.example", "cross-site"),
    ("null", "cross-site"), ("http://127.0.0.1:7860.evil.example", "cross-site"),
    ("https://app.example.com.evil.example", "cross-site"),
])  # fmt: skip
def test_an_origin_neither_own_nor_allowed_is_refused_naming_the_setting(origin: str, site: str) -> None:
    reason = refusal(LOCAL, origin=origin, sec_fetch_site=site)
    assert reason is not None and "CORS_ALLOW_ORIGINS" in reason


def test_an_other_origin_is_refused_even_when_the_browser_calls_it_same_origin() -> None:
    assert refusal(LOCAL, origin="https://evil.example", sec_fetch_site="same-origin") is not None


@pytest.mark.parametrize("site", ["cross-site", "same-site", "Cross-Site"])
def test_a_browser_request_from_another_site_without_origin_is_refused(site: str) -> None:
    reason = refusal(LOCAL, sec_fetch_site=site)
    assert reason is not None and "Sec-Fetch-Site" in reason and "CORS_ALLOW_ORIGINS" in reason


@pytest.mark.parametrize("headers", [
    {},  # curl, an SDK, a carrier's webhook, another region
    {"sec_fetch_site": "none"}, {"sec_fetch_site": "same-origin"},
    {"origin": "http://127.0.0.1:7860", "sec_fetch_site": "same-origin"},  # the local page
    {"origin": "http://localhost:5173", "sec_fetch_site": "same-site"},  # a dev server on another port
    {"origin": "https://app.example.com", "sec_fetch_site": "cross-site"},  # a listed client
])  # fmt: skip
def test_own_allowed_and_non_browser_requests_pass(headers: dict[str, str]) -> None:
    assert refusal(LOCAL, **headers) is None


def test_the_own_origin_is_the_host_the_request_named_whatever_the_scheme() -> None:
    # A cloud page served through a load balancer ending TLS: the app sees Host, not the scheme.
    assert refusal(CLOUD, host="voice.example.com", origin="https://voice.example.com") is None
    assert refusal(CLOUD, host="Voice.Example.com", origin="http://voice.example.com") is None
    assert refusal(CLOUD, host="voice.example.com", origin="https://voice.example.com:8443") is not None
    assert refusal(CLOUD, host="", origin="https://voice.example.com") is not None
    assert refusal(CLOUD, host="voice.example.com", origin="ftp://voice.example.com") is not None


def test_a_cloud_allows_no_loopback_origin() -> None:
    assert refusal(CLOUD, host="voice.example.com", origin="http://localhost:5173") is not None


EVIL = {"Origin": "http://attacker.localhost:5000", "Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "no-cors"}


async def test_a_cross_site_post_with_no_body_starts_nothing_and_rolls_nothing_back(tmp_path: Path) -> None:
    async with dispatcher(tmp_path, keys=False) as (api, launched):
        before = (await api.get("/releases")).json()["releases"]
        start = await api.post("/start", headers=EVIL)
        rollback = await api.post("/releases/rollback", headers=EVIL)
        promote = await api.post("/releases/next/promote", headers=EVIL)
        stop = await api.delete("/sessions/0123456789abcdef0123456789abcdef", headers=EVIL)
        after = (await api.get("/releases")).json()["releases"]
    assert [r.status_code for r in (start, rollback, promote, stop)] == [403] * 4
    assert start.json()["error"]["code"] == "origin_not_allowed"
    assert "CORS_ALLOW_ORIGINS=http://attacker.localhost:5000" in start.json()["error"]["message"]
    assert launched == [] and after == before


async def test_the_local_page_a_dev_server_and_curl_still_start(tmp_path: Path) -> None:
    own = {"Origin": "http://127.0.0.1", "Sec-Fetch-Site": "same-origin"}
    dev = {"Origin": "http://localhost:5173", "Sec-Fetch-Site": "same-site"}
    async with dispatcher(tmp_path, keys=False) as (api, launched):
        codes = [(await api.post("/start", headers=headers)).status_code for headers in (own, dev, {})]
    assert codes == [201, 201, 201] and len(launched) == 3
