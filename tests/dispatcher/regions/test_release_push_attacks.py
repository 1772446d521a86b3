"""What a region that pushes a releases' change can and cannot do to a peer: the peer here is a real
dispatcher app on a loopback port; the pushing region signs with the shared secret, as a
compromised region (or a bug in one) would, and sends records no honest region makes."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any

import httpx
import pytest

from dispatcher.regions.config import Regions
from dispatcher.regions.peers import Peers
from dispatcher.regions.releases import RELEASES_PATH, RegionalReleases
from dispatcher.regions.signing import SKEW_SECONDS, RegionSigner
from dispatcher.releases.catalogue import Catalogue
from dispatcher.releases.live import LiveReleases
from dispatcher.store.release_book import MemoryReleaseBook
from tests.dispatcher.regions.test_release_push import SECRET, region_app
from tests.support.dispatcher_server import serving
from tests.support.http_client import api_client
from tests.support.ports import free_port
from tests.support.releases import ADMIN, release_env


@asynccontextmanager
async def peer(tmp_path: Path) -> AsyncIterator[tuple[str, Any]]:
    """The `us` region's app, serving; and a push to it signed as `eu`."""
    port = free_port()
    urls = {"eu": "http://127.0.0.1:1", "us": f"http://127.0.0.1:{port}"}
    app = region_app(tmp_path, "us", urls, SECRET)
    signer = RegionSigner(Regions("eu", MappingProxyType(urls), SECRET.encode()))
    base = urls["us"]
    try:
        async with serving(app, port), api_client(base_url=base, timeout=30) as http:
            async def push(record: dict[str, Any]) -> httpx.Response:
                body = json.dumps({"traffic": record}).encode()
                headers = {**signer.headers("us", "POST", RELEASES_PATH, body), "content-type": "application/json"}
                return await http.post(RELEASES_PATH, content=body, headers=headers)
            yield base, push
    finally:
        await app.state.voicefleet.aclose()


def change(ms: int, region: str = "eu", **fields: object) -> dict[str, Any]:
    return {"weights": {"stable": 50, "next": 50}, "stable": "stable", "version": [ms, region],
            "changed_by": "admin-0123456789ab", "reason": "next set to 50%", "held": {}, **fields}


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_a_version_beyond_any_clock_is_refused_and_the_admin_surface_keeps_answering(tmp_path: Path) -> None:
    async with peer(tmp_path) as (base, push):
        pushed = await push(change(10**400))
        async with api_client(base_url=base, headers=ADMIN, timeout=30) as admin:
            listed = await admin.get("/releases")
            changed = await admin.put("/releases/next", json={"weight": 20})
    assert pushed.status_code == 422, pushed.text
    assert pushed.json()["error"]["code"] == "invalid_release_record"
    assert listed.status_code == 200, listed.text
    assert changed.status_code == 200 and changed.json()["releases"][1]["weight"] == 20, changed.text


async def test_a_version_far_ahead_of_this_regions_clock_is_refused_so_it_cannot_outrank_later_changes(
        tmp_path: Path) -> None:
    async with peer(tmp_path) as (base, push):
        ahead = await push(change(now_ms() + 10 * 365 * 86_400_000))
        fair = await push(change(now_ms()))
        async with api_client(base_url=base, headers=ADMIN, timeout=30) as admin:
            listed = (await admin.get("/releases")).json()
    assert ahead.status_code == 422, ahead.text
    assert "clock" in ahead.json()["error"]["message"]
    assert fair.status_code == 200, fair.text  # an honest change from the same region is taken
    assert [r["weight"] for r in listed["releases"]] == [50, 50] and listed["version"][1] == "eu"


async def test_a_record_with_oversized_text_or_names_that_are_no_release_names_is_refused(tmp_path: Path) -> None:
    async with peer(tmp_path) as (_, push):
        long_reason = await push(change(now_ms(), reason="x" * 40_000))
        long_region = await push(change(now_ms(), region="r" * 40_000))
        bad_name = await push(change(now_ms(), weights={"stable": 50, "NOT A NAME" * 3000: 50}))
        long_held = await push(change(now_ms(), held={"next": "y" * 40_000}))
    for answer in (long_reason, long_region, bad_name, long_held):
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"] == "invalid_release_record"


async def test_a_peers_state_answer_with_a_version_far_ahead_is_not_adopted(tmp_path: Path) -> None:
    urls = {"eu": "http://127.0.0.1:1", "us": "http://127.0.0.1:2"}
    env = release_env(tmp_path)
    us = LiveReleases(Catalogue.from_env(env, local=True), MemoryReleaseBook(), region="us")
    regions = Regions("us", MappingProxyType(urls), SECRET.encode())
    peers = Peers(regions)
    polling = RegionalReleases(peers, us)
    try:
        await us.refresh()
        await polling.polled(peers.by_name["eu"], {"releases": change(now_ms() + 86_400_000)})
        await polling.polled(peers.by_name["eu"], {"releases": change(now_ms() + 1)})
    finally:
        await polling.aclose()
    assert dict(us.traffic.weights) == {"stable": 50, "next": 50}
    assert us.traffic.version[0] < now_ms() + 60_000  # the honest change, not the one a day ahead


async def test_a_push_naming_another_region_than_its_signer_is_refused(tmp_path: Path) -> None:
    async with peer(tmp_path) as (base, push):
        elsewhere = await push(change(now_ms(), region="ap"))  # signed by eu; ap is no region at all
        as_us = await push(change(now_ms(), region="us"))
        async with api_client(base_url=base, headers=ADMIN, timeout=30) as admin:
            listed = (await admin.get("/releases")).json()
    for answer in (elsewhere, as_us):
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_release_record", answer.text
        assert "signed by eu" in answer.json()["error"]["message"]
    assert [r["weight"] for r in listed["releases"]] == [90, 10]


async def test_a_version_further_ahead_than_the_signatures_skew_is_refused(tmp_path: Path) -> None:
    async with peer(tmp_path) as (_, push):
        ahead = await push(change(now_ms() + int(SKEW_SECONDS * 1000) + 15_000))
    assert ahead.status_code == 422 and "ahead of this region's clock" in ahead.json()["error"]["message"], ahead.text


def polling_region(tmp_path: Path, weights: str = "stable=90,next=10") -> tuple[LiveReleases, Peers, RegionalReleases]:
    urls = {"eu": "http://127.0.0.1:1", "us": "http://127.0.0.1:2", "ap": "http://127.0.0.1:3"}
    us = LiveReleases(Catalogue.from_env(release_env(tmp_path, weights), local=True), MemoryReleaseBook(), region="us")
    peers = Peers(Regions("us", MappingProxyType(urls), SECRET.encode()))
    return us, peers, RegionalReleases(peers, us)


async def test_a_peers_state_may_carry_a_configured_regions_change_never_an_unknown_regions(tmp_path: Path) -> None:
    us, peers, polling = polling_region(tmp_path)
    try:
        await us.refresh()
        await polling.polled(peers.by_name["eu"], {"releases": change(now_ms() + 1, region="nowhere")})
        assert dict(us.traffic.weights) == {"stable": 90, "next": 10}
        await polling.polled(peers.by_name["eu"], {"releases": change(now_ms() + 2, region="ap")})
    finally:
        await polling.aclose()
    assert dict(us.traffic.weights) == {"stable": 50, "next": 50}  # ap's change, which eu took and us missed
    assert (await us.history(1))[0]["by"] == "region eu: admin-0123456789ab"


async def test_a_peers_state_refused_here_is_said_once_and_polling_goes_on(tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    us, peers, polling = polling_region(tmp_path, weights="stable=100")  # next waits for its smoke
    try:
        await us.refresh()
        untested = change(now_ms() + 1)
        with caplog.at_level(logging.WARNING, logger="dispatcher.regions"):
            for _ in range(3):
                await polling.polled(peers.by_name["eu"], {"releases": untested})
    finally:
        await polling.aclose()
    assert dict(us.traffic.weights) == {"stable": 100, "next": 0}
    refusals = [r.getMessage() for r in caplog.records if "is not taken" in r.getMessage()]
    assert len(refusals) == 1 and "voicefleet releases smoke next" in refusals[0], refusals
