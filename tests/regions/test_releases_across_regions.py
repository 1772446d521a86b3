"""The releases' traffic across three regional dispatchers, real processes on loopback: a change at
any region reaches the other two, the newest version wins, a region down during a change gets it
when it comes back, and a push that is stale, unsigned or forged is refused, changing nothing."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from types import MappingProxyType

import httpx

from dispatcher.regions.config import Regions
from dispatcher.regions.releases import RELEASES_PATH
from dispatcher.regions.signing import RegionSigner
from tests.regions.support import SECRET, reachable, region_env
from tests.support.ports import free_port
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.releases import WAIT, admin, release_env, until, weights

NAMES = ("eu", "us", "ap")


def push(urls: dict[str, str], sender: str, receiver: str, record: object, secret: str = SECRET) -> httpx.Response:
    """`sender`'s push of `record` to `receiver`, signed with `secret`."""
    body = json.dumps({"traffic": record}).encode()
    signer = RegionSigner(Regions(sender, MappingProxyType(urls), secret.encode()))
    headers = {**signer.headers(receiver, "POST", RELEASES_PATH, body), "content-type": "application/json"}
    return httpx.post(urls[receiver] + RELEASES_PATH, content=body, headers=headers, timeout=WAIT)


def test_a_change_at_any_region_reaches_the_others_and_a_region_back_from_down_gets_it(tmp_path: Path) -> None:
    urls = {name: f"http://127.0.0.1:{free_port()}" for name in NAMES}
    env = {name: {**region_env(name, urls), **release_env(tmp_path)} for name in NAMES}

    def start(name: str, stack: ExitStack, log: str = "") -> DispatcherProcess:
        port = int(urls[name].rsplit(":", 1)[1])
        return stack.enter_context(run_dispatcher(tmp_path, env[name], port=port, log_name=f"{name}{log}.log"))

    with ExitStack() as stack:
        running = {name: start(name, stack) for name in NAMES}
        until(lambda: all(reachable(running[n], p) for n in NAMES for p in NAMES if p != n))

        assert admin("PUT", urls["eu"], "/releases/next", json={"weight": 30}).status_code == 200
        until(lambda: all(weights(urls[n]) == {"stable": 70, "next": 30} for n in NAMES))
        rolled = admin("POST", urls["us"], "/releases/rollback")
        assert rolled.status_code == 200, rolled.text
        until(lambda: all(weights(urls[n]) == {"stable": 100, "next": 0} for n in NAMES))
        at_ap = admin("GET", urls["ap"], "/releases").json()
        assert at_ap["version"] == rolled.json()["version"] and at_ap["version"][1] == "us"
        trail = admin("GET", urls["ap"], "/releases/history").json()["changes"]
        assert trail[0]["region"] == "us" and trail[0]["to"] == {"stable": 100, "next": 0}  # audited there too

        # ap is down while eu changes the traffic; it comes back with the change, from its peers.
        running["ap"].process.kill()
        running["ap"].process.wait()
        assert admin("PUT", urls["eu"], "/releases/next", json={"weight": 15}).status_code == 200
        until(lambda: weights(urls["us"]) == {"stable": 85, "next": 15})
        start("ap", stack, "-again")
        until(lambda: weights(urls["ap"]) == {"stable": 85, "next": 15})


def test_a_stale_unsigned_or_forged_push_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    urls = {name: f"http://127.0.0.1:{free_port()}" for name in NAMES[:2]}
    with run_dispatcher(tmp_path, {**region_env("eu", urls), **release_env(tmp_path)},
                        port=int(urls["eu"].rsplit(":", 1)[1]), log_name="eu.log"):
        changed = admin("PUT", urls["eu"], "/releases/next", json={"weight": 20})
        assert changed.status_code == 200, changed.text
        held = changed.json()["version"]
        older = {"weights": {"stable": 0, "next": 100}, "stable": "stable", "version": [held[0] - 1, "us"],
                 "changed_by": "ops", "reason": "next set to 100%", "held": {}}

        stale = push(urls, "us", "eu", older)
        assert stale.status_code == 409 and stale.json()["error"]["code"] == "stale_release_version", stale.text
        unsigned = httpx.post(urls["eu"] + RELEASES_PATH, json={"traffic": {**older, "version": [held[0] + 9, "us"]}},
                              timeout=WAIT)
        assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "region_unauthenticated"
        forged = push(urls, "us", "eu", {**older, "version": [held[0] + 9, "us"]}, secret="f" * 34)
        assert forged.status_code == 401 and "does not match" in forged.json()["error"]["message"]
        deployment = push(urls, "us", "eu", {**older, "version": [held[0] + 9, "us"], "changed_by": "deployment"})
        assert deployment.status_code == 422, deployment.text  # a region's own stack list stays in its region
        assert weights(urls["eu"]) == {"stable": 80, "next": 20}

        newer = push(urls, "us", "eu", {**older, "version": [held[0] + 1, "us"]})
        assert newer.status_code == 200 and newer.json()["adopted"] is True, newer.text
        assert weights(urls["eu"]) == {"stable": 0, "next": 100}
