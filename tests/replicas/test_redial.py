"""A session's bot re-dials another replica when the one holding its channel is SIGTERMed or
SIGKILLed, and the session goes on there: its owner record moves, its status, offer and stop
answer at every surviving replica, and it ends cleanly with nothing left behind. For a cold bot
and for a claimed reserve bot (whose credential names only its bot id: the store's claim record
tells the new replica which session it may say hello for).

Real processes throughout: redis-server, three `python -m dispatcher` replicas on the fake Fly API,
bots run per Fly machine by tests/replicas/fly_bots.py (they outlive any replica, as Fly machines
do) with voicefleet's own channel code, and a front (tests/replicas/front.py) that sends each bot's
channel to a live replica, as the load balancer in front of `BOT_CHANNEL_URL` does.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from botchannel.contract import CHANNEL_PATH
from tests.fakes.fixtures import fake_fly
from tests.fakes.fly import FakeFly
from tests.replicas.fly_bots import FlyBots, fly_bots
from tests.replicas.front import Front, front
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

__all__ = ["fake_fly"]
pytestmark = pytest.mark.slow  # three dispatchers, a redis-server and four bot processes per case

KEY = "replicas-redial-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
ADMIN_KEY = "replicas-redial-admin-key-0123456789"
METRICS = {"Authorization": f"Bearer {ADMIN_KEY}"}  # /metrics is an admin key's
DEADLINE = 60.0  # generous: a machine shared with other test runs


def env(fly: FakeFly, store: RedisServer, name: str, channel_url: str, **extra: str) -> dict[str, str]:
    return {"MACHINES": "fly", "DISPATCHER_API_KEYS": KEY, "DISPATCHER_ADMIN_KEYS": ADMIN_KEY, **fly.env, **store.env,
            "REPLICA_ID": name,
            "REDIS_LEASE_SECONDS": "3", "BOT_CHANNEL_URL": channel_url, "BOT_CHANNEL_TOKEN": "d" * 40,
            "BOT_IDENTITY_AUDIENCE": channel_url,  # the bots' tokens name the URL they dial (the front's)
            "TRANSPORTS": "webrtc", "TURN_URLS": "turn:127.0.0.1:3478?transport=udp",
            "TURN_SHARED_SECRET": "t" * 32, "MAX_SESSION_SECONDS": "600", "SHUTDOWN_GRACE_SECONDS": "20",
            "REAPER_INTERVAL_SECONDS": "0.5", "LOG_LEVEL": "warning", "FLY_LIST_RATE": "100",
            "FLY_LIST_BURST": "100", **extra}


def port_of(replica: DispatcherProcess) -> int:
    return int(urlsplit(replica.base_url).port or 0)


def until(what: str, condition: Callable[[], Any], logs: Callable[[], str]) -> Any:
    return wait_until(condition, what, timeout=DEADLINE, detail=logs)


Fleet = tuple[list[DispatcherProcess], Front, FlyBots, redis.Redis]


@contextmanager
def fly_fleet(tmp_path: Path, store: RedisServer, fake_fly: FakeFly, reserves: list[dict[str, str]]) -> Iterator[Fleet]:
    """A replica per entry of `reserves` (its reserve settings), the Fly fake's bots behind a balancer."""
    # Each replica's reaper lists every 0.5 s here (its default is 60 s) to finish within the test:
    # more than Fly's 1 list/s, which is not what this tests (tests/dispatcher/machines/test_fly_lists.py does).
    fake_fly.list_per_second, fake_fly.list_burst = 1000, 1000
    with ExitStack() as stack:
        balancer = stack.enter_context(front())
        channel_url = f"ws://127.0.0.1:{balancer.port}{CHANNEL_PATH}"
        (tmp_path / "bots").mkdir()
        bots = stack.enter_context(fly_bots(fake_fly, {"BOT_CHANNEL_URL": channel_url}, tmp_path / "bots"))
        replicas = []
        for n, reserve in enumerate(reserves):
            (tmp_path / f"r{n}").mkdir()
            replicas.append(stack.enter_context(run_dispatcher(
                tmp_path / f"r{n}", env(fake_fly, store, f"r-{n}", channel_url, **reserve))))
            if n == 0:  # every bot's channel goes to r-0 first, from r-0's first reserve bot on: a bot
                # that waited at the balancer while the other replicas started would give up its dial
                balancer.route_to(port_of(replicas[0]))
        client = store.admin()
        stack.callback(client.close)
        yield replicas, balancer, bots, client


@pytest.fixture
def fleet(tmp_path: Path, store: RedisServer, fake_fly: FakeFly) -> Iterator[Fleet]:
    # r-0 keeps one idle bot; the others none, so every other start there is cold.
    with fly_fleet(tmp_path, store, fake_fly, [{"RESERVE_MIN_IDLE": "1", "RESERVE_BUFFER": "0", "RESERVE_BURST": "0"},
                                                {"RESERVE_MAX_IDLE": "0"}, {"RESERVE_MAX_IDLE": "0"}]) as running:
        yield running


def machine_of(fly: FakeFly, session_id: str) -> dict[str, Any]:
    [machine] = [m for m in list(fly.machines.values())
                 if m["config"]["metadata"].get("voicefleet_session") == session_id]
    return machine


def offer(base_url: str, session_id: str) -> httpx.Response:
    return httpx.post(f"{base_url}/sessions/{session_id}/api/offer", json={"sdp": "v=0", "type": "offer"},
                      headers=AUTH, timeout=DEADLINE)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_cold_and_a_claimed_reserve_bot_re_dial_another_replica_and_their_sessions_go_on(
    fleet: tuple[list[DispatcherProcess], Front, FlyBots, redis.Redis], fake_fly: FakeFly, stop: signal.Signals
) -> None:
    replicas, balancer, bots, store = fleet
    held, cold_starter, asker = replicas

    def logs() -> str:
        return "\n".join(f"--- {r.base_url}\n{r.log()[-3000:]}" for r in replicas)

    def owner(session_id: str) -> str | None:
        value = store.get(f"{{voicefleet}}:owner:{session_id}")
        return None if value is None else str(value)

    until("r-0 holds an idle bot", lambda: store.keys("*:hello:*"), logs)
    sessions = {}
    for kind, starter in (("warm", held), ("cold", cold_starter)):
        answer = httpx.post(f"{starter.base_url}/start?wait=started", json={}, headers=AUTH, timeout=DEADLINE)
        assert answer.status_code == 201, f"{answer.text}\n{logs()}"
        sessions[kind] = answer.json()["session_id"]
    assert machine_of(fake_fly, sessions["warm"])["name"].startswith("vf-idle-"), "the warm start was not a claim"
    assert machine_of(fake_fly, sessions["cold"])["name"] == f"vf-{sessions['cold']}"
    answering = {}
    for kind, session_id in sessions.items():
        until(f"the {kind} bot's channel at r-0", lambda s=session_id: owner(s) == "r-0", logs)  # type: ignore[misc]
        relayed = offer(asker.base_url, session_id)
        assert relayed.status_code == 200, relayed.text
        answering[kind] = relayed.json()["bot"]  # "<session>/<pid>": which bot answered

    # r-0 refilled its reserve after the claim: its new idle bot is on r-0's channel before r-0 goes,
    # so it goes with it (an idle bot whose channel drops exits), leaving nothing for the end check.
    until("every reserve bot dialled r-0", lambda: len(store.keys("*:hello:*")) == len(
        [m for m in list(fake_fly.machines.values()) if m["name"].startswith("vf-idle-")]), logs)
    balancer.route_to(port_of(cold_starter), port_of(asker))  # r-0 leaves the load balancer…
    held.process.send_signal(stop)  # …and is stopped: drained, or killed outright
    if stop == signal.SIGTERM:
        assert held.process.wait(timeout=DEADLINE) in (0, -signal.SIGTERM), held.log()
        assert "Traceback" not in held.log()

    survivors = [cold_starter, asker]
    for kind, session_id in sessions.items():
        until(f"the {kind} bot re-dialled another replica",
              lambda s=session_id: owner(s) in ("r-1", "r-2"), logs)  # type: ignore[misc]
        for replica in survivors:
            status = httpx.get(f"{replica.base_url}/sessions/{session_id}", headers=AUTH, timeout=DEADLINE)
            assert status.status_code == 200 and status.json()["status"] == "started", status.text
            again = offer(replica.base_url, session_id)
            assert again.status_code == 200, f"{kind}: {again.text}\n{logs()}"
            assert again.json()["bot"] == answering[kind]  # the same bot, on its new channel

    for kind, session_id in sessions.items():
        stopper = survivors[0] if kind == "warm" else survivors[1]
        stopped = httpx.delete(f"{stopper.base_url}/sessions/{session_id}", headers=AUTH, timeout=DEADLINE)
        assert stopped.status_code in (202, 204), stopped.text
        machine = machine_of(fake_fly, session_id)
        exit_code = bots.processes[machine["id"]].wait(DEADLINE)  # raises if the bot outlives its session
        assert exit_code == 0, bots.log(machine["id"])  # ended cleanly, its report sent
        gone = httpx.get(f"{survivors[0].base_url}/sessions/{session_id}", headers=AUTH, timeout=DEADLINE)
        assert gone.status_code == 404 or gone.json()["status"] in ("ended", "failed"), gone.text

    # Nothing left: r-0's idle bots lost their channel and exited; every machine is destroyed.
    until("no bot process left", lambda: not bots.alive(), logs)
    until("no machine left", lambda: all(m["state"] == "destroyed" for m in list(fake_fly.machines.values())), logs)
