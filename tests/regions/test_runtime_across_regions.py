"""Runtime settings across three regional dispatchers, real processes on loopback, each region on a
redis-server of its own: a key made in one region starts a session in another and, revoked, is
refused there; a capacity change in one is applied in the others, audited there; a region down
during the changes gets them when it is back; a push that is unsigned, forged, from the wrong maker
or out of shape changes nothing. Nothing is timed: each wait polls with a generous deadline."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any

import httpx

from dispatcher.regions.config import Regions
from dispatcher.regions.runtime import RUNTIME_PATH
from dispatcher.regions.signing import RegionSigner
from tests.regions.stored_regions import ADMIN, ADMIN_KEY, Region, start_replica, stored_regions
from tests.regions.support import SECRET, reachable, region_env
from tests.support.ports import free_port
from tests.support.processes import run_dispatcher
from tests.support.waiting import wait_until

NAMES = ("eu", "us", "ap")
DEADLINE = 60.0  # a safety net for a loaded machine, never what a test checks


def admin(method: str, url: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, url + path, headers=ADMIN, timeout=DEADLINE, **kwargs)


def cap(url: str) -> int:
    return int(admin("GET", url, "/capacity").json()["values"]["sessions"]["value"])


def start(url: str, key: str) -> httpx.Response:
    return httpx.post(f"{url}/start?wait=started", json={"body": {}}, timeout=DEADLINE,
                      headers={"Authorization": f"Bearer {key}"})


def sessions_status(url: str, key: str) -> int:
    return httpx.get(f"{url}/sessions", headers={"Authorization": f"Bearer {key}"}, timeout=DEADLINE).status_code


def logs(regions: dict[str, Region]) -> str:
    return "\n".join(f"--- {r.url}\n{p.log()[-3000:]}" for r in regions.values() for p in r.replicas)


def test_keys_and_capacity_made_in_one_region_apply_in_every_other_and_a_region_down_catches_up(
        tmp_path: Path) -> None:
    with stored_regions(tmp_path, NAMES) as (regions, stack):
        eu, us, ap = (regions[n].url for n in NAMES)
        wait_until(lambda: all(reachable(regions[n].replicas[0], p) for n in NAMES for p in NAMES if p != n),
                   "every region reaches every other", timeout=DEADLINE)

        made = admin("POST", eu, "/keys", json={"name": "acme"})
        assert made.status_code == 201, made.text
        secret = made.json()["secret"]
        started = wait_until(lambda: (a := start(us, secret)).status_code == 201 and a,
                             "eu's key starts a session in us", timeout=DEADLINE, interval=0.1,
                             detail=lambda: logs(regions))
        assert isinstance(started, httpx.Response)
        listed = admin("GET", ap, "/keys").json()["keys"]
        assert [(k["name"], k["source"]) for k in listed] == [("acme", "runtime")]

        assert admin("PATCH", eu, "/capacity", json={"sessions": 7}).status_code == 200
        wait_until(lambda: cap(us) == 7 and cap(ap) == 7, "eu's cap applied in us and ap", timeout=DEADLINE,
                   interval=0.1, detail=lambda: logs(regions))
        trail = admin("GET", ap, "/audit/runtime").json()["lines"]
        assert {(line["action"], line["region"]) for line in trail} == {("key.create", "eu"), ("capacity.set", "eu")}
        assert all(line["by"].startswith("region eu: admin-") for line in trail), trail

        assert admin("DELETE", eu, "/keys/acme").status_code == 204
        wait_until(lambda: sessions_status(us, secret) == 401, "the revoked key refused in us", timeout=DEADLINE,
                   interval=0.1, detail=lambda: logs(regions))
        assert start(ap, secret).status_code == 401

        # ap is down while us makes a key and changes the cap; back, it has both from its peers.
        regions["ap"].replicas[0].process.kill()
        regions["ap"].replicas[0].process.wait()
        beta = admin("POST", us, "/keys", json={"name": "beta"})
        assert beta.status_code == 201, beta.text
        assert admin("PATCH", us, "/capacity", json={"sessions": 9}).status_code == 200
        wait_until(lambda: cap(eu) == 9, "us's cap applied in eu", timeout=DEADLINE, interval=0.1)
        start_replica(stack, regions["ap"], 0, port=int(ap.rsplit(":", 1)[1]), again="-again")
        wait_until(lambda: cap(ap) == 9 and sessions_status(ap, beta.json()["secret"]) == 200,
                   "ap back with us's cap and key", timeout=DEADLINE, interval=0.1, detail=lambda: logs(regions))
        assert sessions_status(ap, secret) == 401  # the revocation it had before, still refused


def push(urls: dict[str, str], sender: str, receiver: str, payload: object, secret: str = SECRET) -> httpx.Response:
    body = json.dumps(payload).encode()
    signer = RegionSigner(Regions(sender, MappingProxyType(urls), secret.encode()))
    headers = {**signer.headers(receiver, "POST", RUNTIME_PATH, body), "content-type": "application/json"}
    return httpx.post(urls[receiver] + RUNTIME_PATH, content=body, headers=headers, timeout=DEADLINE)


def test_a_push_unsigned_forged_from_the_wrong_maker_or_out_of_shape_changes_nothing(tmp_path: Path) -> None:
    urls = {name: f"http://127.0.0.1:{free_port()}" for name in NAMES[:2]}
    with run_dispatcher(tmp_path, {**region_env("eu", urls), "DISPATCHER_ADMIN_KEYS": ADMIN_KEY},
                        port=int(urls["eu"].rsplit(":", 1)[1]), log_name="eu.log"):
        eu = urls["eu"]
        now, setting = int(time.time() * 1000), cap(eu)

        def change(region: str, at: int = now) -> dict[str, Any]:
            return {"entries": {"capacity": {"sessions": {"value": 3, "version": [at, region], "by": "ops"}}}}

        unsigned = httpx.post(eu + RUNTIME_PATH, json=change("us"), timeout=DEADLINE)
        assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "region_unauthenticated"
        forged = push(urls, "us", "eu", change("us"), secret="f" * 34)
        assert forged.status_code == 401 and "does not match" in forged.json()["error"]["message"]
        # The whole record holds the keys' hashes and salts: read by a region only.
        for headers in ({}, RegionSigner(Regions("us", MappingProxyType(urls), b"f" * 34)).headers(
                "eu", "GET", RUNTIME_PATH)):
            record = httpx.get(eu + RUNTIME_PATH, headers=headers, timeout=DEADLINE)
            assert record.status_code == 401 and "entries" not in record.text, record.text
        for payload, says in ((change("eu"), "did not make it"), (change("us", now + 3_600_000), "ahead"),
                              ({"entries": {"keys": {}}}, "send an object of"),
                              ({"entries": {"secrets": {"0123456789ab": {"name": "acme", "salt": "00"}}}}, "salt")):
            refused = push(urls, "us", "eu", payload)
            assert refused.status_code == 422, refused.text
            error = refused.json()["error"]
            assert error["code"] == "invalid_runtime_record" and says in error["message"], error
            assert "\n" not in error["message"]
        assert cap(eu) == setting != 3

        taken = push(urls, "us", "eu", change("us"))
        assert taken.status_code == 200 and taken.json()["adopted"] is True, taken.text
        assert cap(eu) == 3
        again = push(urls, "us", "eu", change("us"))  # the same change twice: nothing new
        assert again.status_code == 200 and again.json()["adopted"] is False
        # A captured push sent again as it was (a lower value, newer than what eu holds) is a replay.
        body = json.dumps({"entries": {"capacity": {"sessions": {"value": 2, "version": [now + 1, "us"],
                                                                  "by": "ops"}}}}).encode()
        signer = RegionSigner(Regions("us", MappingProxyType(urls), SECRET.encode()))
        captured = {**signer.headers("eu", "POST", RUNTIME_PATH, body), "content-type": "application/json"}
        first = httpx.post(eu + RUNTIME_PATH, content=body, headers=captured, timeout=DEADLINE)
        assert first.status_code == 200 and cap(eu) == 2, first.text
        assert push(urls, "us", "eu", change("us", now + 2)).status_code == 200 and cap(eu) == 3
        replayed = httpx.post(eu + RUNTIME_PATH, content=body, headers=captured, timeout=DEADLINE)
        assert replayed.status_code == 401 and "replay" in replayed.json()["error"]["message"]
        assert cap(eu) == 3
        older = push(urls, "us", "eu", {"entries": {"capacity": {"sessions": {"value": 4, "version": [now - 1, "us"],
                                                                               "by": "ops"}}}})
        assert older.status_code == 200 and older.json()["adopted"] is False and cap(eu) == 3
