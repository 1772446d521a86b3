"""Regional dispatchers as real processes on loopback: each sees the others, their round trips and
their loss; forged, wrongly keyed and replayed region requests are refused; a contradicting
`REGIONS` stops a dispatcher at start-up."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import MappingProxyType

import httpx
import pytest

from dispatcher.regions.config import Regions
from dispatcher.regions.signing import RegionSigner
from tests.dispatcher.conftest import API_KEY, STANDIN_BOT, STANDIN_LOCAL_BOT_ENV
from tests.support.ports import free_port
from tests.support.processes import DispatcherProcess, run_dispatcher

SECRET = "region-secret-0123456789abcdefghij"
ADMIN_KEY = "region-peers-admin-key-0123456789"  # what a peer last advertised is an admin's read at /healthz
RegionPair = tuple[dict[str, str], dict[str, DispatcherProcess]]  # the regions' URLs and processes


def region_env(name: str, urls: dict[str, str], secret: str = SECRET) -> dict[str, str]:
    return {**STANDIN_LOCAL_BOT_ENV, "LOCAL_BOT_COMMAND": shlex.join(STANDIN_BOT), "STANDIN_MODE": "serve",
            "RESERVE_MAX_IDLE": "0", "DISPATCHER_API_KEYS": API_KEY, "DISPATCHER_ADMIN_KEYS": ADMIN_KEY, "REGION": name,
            "REGIONS": ",".join(f"{n}={u}" for n, u in urls.items()), "REGION_SECRET": secret}


@contextmanager
def regions(tmp_path: Path, names: tuple[str, ...], extra: dict[str, dict[str, str]] | None = None,
            ) -> Iterator[tuple[dict[str, str], dict[str, DispatcherProcess]]]:
    """Real dispatchers, one per region, on loopback; `extra`: a region's own settings."""
    ports = {name: free_port() for name in names}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    with ExitStack() as stack:
        running = {name: stack.enter_context(run_dispatcher(
            tmp_path, {**region_env(name, urls), **(extra or {}).get(name, {})}, port=ports[name],
            log_name=f"{name}.log")) for name in names}
        yield urls, running


def health(process: DispatcherProcess) -> dict:
    """Its /healthz as an admin key reads it: each peer's whole view (anyone else sees reachability only)."""
    return httpx.get(f"{process.base_url}/healthz", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=2).json()


def until(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until `condition` held; fails past `timeout`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - started


def more_polls(polled: DispatcherProcess, count: int) -> None:
    """Until `polled` has answered `count` more of its peers' polls (its access log's lines): each
    poll's answer has been read by the poller that sent the one after it."""
    polls = polled.log().count("GET /regions/state")
    until(lambda: polled.log().count("GET /regions/state") >= polls + count, 60)


def reachable(process: DispatcherProcess, peer: str) -> bool:
    return bool(health(process).get("regions", {}).get(peer, {}).get("reachable"))


def test_each_region_sees_the_others_with_their_round_trips(region_pair: RegionPair) -> None:
    _, running = region_pair  # each reads the other (the fixture waited for both)
    seen = health(running["eu"])
    assert seen["status"] == "ok" and seen["region"] == "eu"
    assert seen["regions"]["us"]["round_trip_ms"] > 0
    public = httpx.get(f"{running['eu'].base_url}/healthz", timeout=2).json()  # a load balancer, anyone
    assert public["regions"] == {"us": {"reachable": True}}, public


def test_a_killed_region_is_unreachable_and_noticed_when_back(tmp_path: Path) -> None:
    # Noticed at its first unanswered poll (tests/dispatcher/regions/test_peer_lost.py); the
    # deadlines here are safety nets, not the bound: a loaded machine delays every poll.
    with regions(tmp_path, ("eu", "us")) as (urls, running):
        until(lambda: reachable(running["eu"], "us"), 60)
        running["us"].process.kill()
        running["us"].process.wait()
        until(lambda: not reachable(running["eu"], "us"), 60)
        assert health(running["eu"])["status"] == "ok"  # a neighbour's loss degrades no region
        port = int(urls["us"].rsplit(":", 1)[1])
        with run_dispatcher(tmp_path, region_env("us", urls), port=port, log_name="us-again.log"):
            until(lambda: reachable(running["eu"], "us"), 60)


def test_forged_wrongly_keyed_and_replayed_region_requests_are_refused(region_pair: RegionPair) -> None:
    urls, running = region_pair
    state = f"{running['eu'].base_url}/regions/state"
    unsigned = httpx.get(state, timeout=5)
    assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "region_unauthenticated"
    frozen = MappingProxyType(urls)
    wrong = RegionSigner(Regions("us", frozen, b"w" * 32)).headers("eu", "GET", "/regions/state")
    assert "does not match" in httpx.get(state, headers=wrong, timeout=5).json()["error"]["message"]
    signed = RegionSigner(Regions("us", frozen, SECRET.encode())).headers("eu", "GET", "/regions/state")
    answer = httpx.get(state, headers=signed, timeout=5)
    assert answer.status_code == 200 and answer.json()["region"] == "eu"
    assert answer.json()["capacity"]["room"] > 0
    replayed = httpx.get(state, headers=signed, timeout=5)
    assert replayed.status_code == 401 and "already taken" in replayed.json()["error"]["message"]


def test_a_region_whose_regions_contradict_a_running_peer_refuses_to_start(region_pair: RegionPair) -> None:
    urls, _ = region_pair
    impostor = {"eu": urls["eu"], "us": f"http://127.0.0.1:{free_port()}"}  # eu lists us elsewhere
    result = start_and_wait(region_env("us", impostor))
    assert result.returncode == 2
    assert f"REGIONS disagrees with eu's on us: {impostor['us']} here, {urls['us']} there" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REGION": "eu", "REGIONS": "eu=http://127.0.0.1:1", "REGION_SECRET": SECRET},
         "REGION needs DISPATCHER_API_KEYS"),
        ({"REGION": "ap", "REGIONS": "eu=http://127.0.0.1:1", "REGION_SECRET": SECRET, "DISPATCHER_API_KEYS": "k"},
         "REGIONS does not list this region (REGION=ap)"),
        ({"REGION": "eu", "REGIONS": "eu=http://127.0.0.1:1", "REGION_SECRET": "short", "DISPATCHER_API_KEYS": "k"},
         "REGION_SECRET must be at least 32 characters"),
        ({"REGION": "eu", "REGIONS": "eu=http://127.0.0.1:1", "DISPATCHER_API_KEYS": "k"},
         "REGION_SECRET must be set with REGION, REGIONS"),
        ({"REGION": "Europe!", "REGIONS": "eu=http://127.0.0.1:1", "REGION_SECRET": SECRET,
          "DISPATCHER_API_KEYS": "k"}, "REGION='Europe!' is not a region name"),
        ({"REGION": "eu", "REGIONS": "eu=http://127.0.0.1:1", "REGION_SECRET": SECRET,
          "REGION_ACCEPTED_SECRET": "short", "DISPATCHER_API_KEYS": "k"},
         "REGION_ACCEPTED_SECRET must be at least 32 characters"),
    ],
)
def test_a_bad_region_setting_stops_the_dispatcher_in_one_line(env: dict[str, str], message: str) -> None:
    result = start_and_wait(env)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and "short" not in result.stderr  # the secret's length, never its value


def test_regions_that_came_to_disagree_while_running_say_so_in_healthz_and_one_log_line(tmp_path: Path) -> None:
    # A disagreement no start-up could see: us is stopped (answering nothing) while eu starts with
    # another URL for ap, so neither refused to start. It cannot stop a running region; it is shown.
    ports = {name: free_port() for name in ("eu", "us", "ap")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    elsewhere = {**urls, "ap": f"http://127.0.0.1:{free_port()}"}
    with ExitStack() as stack:
        us = stack.enter_context(run_dispatcher(tmp_path, region_env("us", elsewhere), port=ports["us"],
                                                log_name="us.log"))
        os.kill(us.process.pid, signal.SIGSTOP)
        try:
            eu = stack.enter_context(run_dispatcher(tmp_path, region_env("eu", urls), port=ports["eu"],
                                                    log_name="eu.log"))
        finally:
            os.kill(us.process.pid, signal.SIGCONT)
        conflict = f"REGIONS disagrees with us's on ap: {urls['ap']} here, {elsewhere['ap']} there"
        until(lambda: conflict in (health(eu)["regions"]["us"]["problem"] or ""), 60)
        seen = health(eu)
        assert seen["status"] == "ok" and not seen["regions"]["us"]["reachable"]  # not used, not fatal
        reverse = f"REGIONS disagrees with eu's on ap: {elsewhere['ap']} here, {urls['ap']} there"
        until(lambda: reverse in (health(us)["regions"]["eu"]["problem"] or ""), 60)
        more_polls(us, 3)  # several more polls, each seeing it again
        assert len([line for line in eu.log().splitlines() if conflict in line]) == 1


def start_and_wait(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("HOST", "MACHINES", "DISPATCHER_API_KEYS")}
    return subprocess.run([sys.executable, "-m", "dispatcher"], env={**clean, **env, "PORT": str(free_port())},
                          capture_output=True, text=True, timeout=60)
