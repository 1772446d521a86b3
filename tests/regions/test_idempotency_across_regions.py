"""One `Idempotency-Key`, one session, in every region: a replay at another region finds the session
the first start made (also when two regions get the key at once); a key whose home region is down
is refused 503, never started twice; a relayed request without a region's signature is refused."""

from __future__ import annotations

import threading
from pathlib import Path
from types import MappingProxyType

import httpx

from dispatcher.api.auth import Authenticator
from dispatcher.regions.config import Regions
from dispatcher.regions.home import home_region
from dispatcher.settings import hash_api_key
from tests.dispatcher.conftest import API_KEY
from tests.regions.support import RegionPair, reachable, regions, until
from tests.support.processes import DispatcherProcess

AUTH = {"Authorization": f"Bearer {API_KEY}"}
CALLER = Authenticator(frozenset({hash_api_key(API_KEY)})).identify(f"Bearer {API_KEY}").id


def start(process: DispatcherProcess, key: str, body: dict | None = None) -> httpx.Response:
    return httpx.post(f"{process.base_url}/start", json={"body": body or {}},
                      headers={**AUTH, "Idempotency-Key": key}, timeout=30)


def key_homed_at(urls: dict[str, str], home: str) -> str:
    layout = Regions("eu", MappingProxyType(urls), b"x" * 32)
    return next(key for n in range(1000) if home_region(layout, CALLER, key := f"order-{n}") == home)


def test_a_key_replayed_at_another_region_finds_the_first_session(region_pair: RegionPair) -> None:
    urls, running = region_pair
    for home in ("eu", "us"):  # the key's home here, and there
        key = key_homed_at(urls, home)
        first = start(running["eu"], key)
        assert first.status_code == 201 and first.json()["region"] == "eu"
        again = start(running["us"], key)
        assert again.status_code == 200, again.text
        assert again.json()["session_id"] == first.json()["session_id"] and again.json()["region"] == "eu"
        other_body = start(running["us"], key, {"different": True})
        assert other_body.status_code == 409


def test_two_regions_given_one_key_at_once_start_one_session(region_pair: RegionPair) -> None:
    _, running = region_pair
    for attempt in range(3):
        answers: dict[str, httpx.Response] = {}
        barrier = threading.Barrier(2)

        def at(name: str, key: str, barrier: threading.Barrier = barrier,
               answers: dict[str, httpx.Response] = answers) -> None:
            barrier.wait()
            answers[name] = start(running[name], key)

        threads = [threading.Thread(target=at, args=(name, f"together-{attempt}")) for name in ("eu", "us")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        codes = sorted(a.status_code for a in answers.values())
        assert codes == [200, 201], {n: a.text for n, a in answers.items()}
        assert answers["eu"].json()["session_id"] == answers["us"].json()["session_id"]


def test_a_key_whose_home_is_down_is_refused_not_started_twice(tmp_path: Path) -> None:
    with regions(tmp_path, ("eu", "us")) as (urls, running):
        until(lambda: reachable(running["eu"], "us"), 60)
        running["us"].process.kill()
        running["us"].process.wait()
        until(lambda: not reachable(running["eu"], "us"), 60)
        refused = start(running["eu"], key_homed_at(urls, "us"))
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "region_unreachable"
        assert "home region us" in refused.json()["error"]["message"] and refused.headers["Retry-After"] == "1"
        assert start(running["eu"], key_homed_at(urls, "eu")).status_code == 201  # its own keys still start
        assert httpx.post(f"{running['eu'].base_url}/start", json={"body": {}}, headers=AUTH,
                          timeout=30).status_code == 201  # and starts without a key


def test_a_relayed_request_without_a_regions_signature_is_refused(region_pair: RegionPair) -> None:
    _, running = region_pair
    forged = httpx.post(f"{running['eu'].base_url}/start", json={"body": {}},
                        headers={**AUTH, "Idempotency-Key": "k", "voicefleet-relayed-by": "us"}, timeout=30)
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "region_unauthenticated"
