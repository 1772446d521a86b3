"""Regional dispatchers as real processes on loopback: each sees the others, their round trips and
their loss; forged, wrongly keyed and replayed region requests are refused; a contradicting
`REGIONS` stops a dispatcher at start-up. A bad region setting stops `python -m dispatcher`'s
`main` before it serves (in-process: the exit code and the one line are main's own; the process's
exit with them is the contradicting-peer test's)."""

from __future__ import annotations

import os
import signal
from contextlib import ExitStack
from pathlib import Path
from types import MappingProxyType

import httpx
import pytest

from dispatcher.__main__ import main
from dispatcher.regions.config import Regions
from dispatcher.regions.signing import RegionSigner
from tests.regions.support import (
    SECRET,
    RegionPair,
    health,
    more_polls,
    reachable,
    region_env,
    start_and_wait,
    until,
)
from tests.support.ports import free_port
from tests.support.processes import run_dispatcher

__all__ = ["reachable", "region_env"]  # still read from here by tests/security


def test_each_region_sees_the_others_with_their_round_trips(region_pair: RegionPair) -> None:
    _, running = region_pair  # each reads the other (the fixture waited for both)
    seen = health(running["eu"])
    assert seen["status"] == "ok" and seen["region"] == "eu"
    assert seen["regions"]["us"]["round_trip_ms"] > 0
    public = httpx.get(f"{running['eu'].base_url}/healthz", timeout=2).json()  # a load balancer, anyone
    assert public["regions"] == {"us": {"reachable": True}}, public


def test_a_killed_region_is_unreachable_and_noticed_when_back(region_pair: RegionPair,
                                                               region_stack: ExitStack, tmp_path: Path) -> None:
    # Noticed at its first unanswered poll (tests/dispatcher/regions/test_peer_lost.py); the
    # deadlines here are safety nets, not the bound: a loaded machine delays every poll. us comes
    # back on its port for the module's other tests, as they found it.
    urls, running = region_pair
    running["us"].process.kill()
    running["us"].process.wait()
    until(lambda: not reachable(running["eu"], "us"), 60)
    assert health(running["eu"])["status"] == "ok"  # a neighbour's loss degrades no region
    port = int(urls["us"].rsplit(":", 1)[1])
    running["us"] = region_stack.enter_context(
        run_dispatcher(tmp_path, region_env("us", urls), port=port, log_name="us-again.log"))
    until(lambda: reachable(running["eu"], "us") and reachable(running["us"], "eu"), 60)


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
def test_a_bad_region_setting_stops_the_dispatcher_in_one_line(
        env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("HOST", "MACHINES", "DISPATCHER_API_KEYS"):  # as start_and_wait's process is given
        monkeypatch.delenv(name, raising=False)
    for name, value in {**env, "PORT": str(free_port())}.items():
        monkeypatch.setenv(name, value)
    assert main([]) == 2  # `python -m dispatcher` exits with it
    stderr = capsys.readouterr().err
    assert message in stderr and len(stderr.strip().splitlines()) == 1
    assert "Traceback" not in stderr and "short" not in stderr  # the secret's length, never its value


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
