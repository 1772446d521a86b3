"""Two or three real `python -m dispatcher` processes sharing a real redis-server, every request
sent to a replica picked at random (seeded, so a failure replays).

Local mode: each replica's bots are its own stand-in processes (tests/dispatcher/standin_bot.py)
dialling that replica's channel, so a request that lands on another replica has to go through the
store to reach them, which is what these tests prove.
"""

from __future__ import annotations

import contextlib
import random
import shlex
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_LOCAL_BOT_ENV
from tests.support.processes import DispatcherProcess, processes_with_env, run_dispatcher
from tests.support.redis_server import RedisServer, redis_server
from tests.support.waiting import wait_until

TIMEOUT = 60.0
# Leases (a keyed start's, a session owner's record, a replica's own) that no stall of a loaded
# machine outlasts: nothing here waits for one to run out (a start lets go of its lease when it is
# done; a bot's record is written when it dials in), so a replica paused for seconds still holds
# what it holds. The heartbeat comes every third of a lease; a test that needs it sooner says so.
LEASE_SECONDS = "60"
# Sessions belong to the API key that started them, the same key at every replica (keyless local
# mode draws a random owner key per process, so replicas could not read each other's sessions).
API_KEY = "replicas-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@dataclass
class Fleet:
    store: RedisServer
    replicas: list[DispatcherProcess]
    mark: str
    pick: random.Random = field(default_factory=lambda: random.Random(24))

    def any(self) -> str:
        return self.pick.choice(self.replicas).base_url

    def others(self, base_url: str) -> list[str]:
        return [r.base_url for r in self.replicas if r.base_url != base_url]

    def bots(self) -> list[int]:
        """Every stand-in bot process of this fleet (idle or in a session), by its marker (which
        the replicas, whose environment the bots inherit, carry too)."""
        replicas = {r.process.pid for r in self.replicas}
        return [pid for pid in processes_with_env("STANDIN_MARK", self.mark) if pid not in replicas]

    def sessions_of_bots(self) -> Counter[str]:
        """How many bot processes each session has (cold bots carry their session in their
        environment)."""
        found: Counter[str] = Counter()
        for pid in self.bots():
            with contextlib.suppress(OSError), open(f"/proc/{pid}/environ", "rb") as environ:
                for item in environ.read().split(b"\0"):
                    if item.startswith(b"VOICEFLEET_SESSION_ID="):
                        found[item.split(b"=", 1)[1].decode()] += 1
        return found

    def logs(self) -> str:
        return "\n".join(f"--- {r.base_url}\n{r.log()[-4000:]}" for r in self.replicas)


def replica_env(store: RedisServer, mark: str, name: str, **extra: str) -> dict[str, str]:
    return {
        **store.env,  # the AWS stack's store user and its access string (tests/support/redis_server.py)
        "REPLICA_ID": name,
        "REDIS_LEASE_SECONDS": LEASE_SECONDS,
        "LOCAL_BOT_COMMAND": shlex.join(STANDIN_BOT),
        **STANDIN_LOCAL_BOT_ENV,
        "STANDIN_MODE": "serve",
        "STANDIN_MARK": mark,
        "STANDIN_SIGN_ANSWERS": "1",
        "MAX_CONCURRENT_SESSIONS": "500",
        "START_RATE_PER_KEY": "1000",
        "START_BURST_PER_KEY": "1000",
        "LOG_LEVEL": "warning",
        "DISPATCHER_API_KEYS": API_KEY,
        **extra,
    }


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


def greeted(store: RedisServer) -> int:
    """Reserve bots whose idle hello a replica recorded (only a greeted bot can be claimed)."""
    return len(store.admin().keys("{voicefleet}:hello:*"))


@contextmanager
def start_fleet(tmp_path: Path, store: RedisServer, count: int, **extra: str) -> Iterator[Fleet]:
    mark = str(tmp_path)
    with ExitStack() as stack:
        replicas = []
        for n in range(count):
            log_dir = tmp_path / f"replica-{n}"
            log_dir.mkdir()
            env = replica_env(store, mark, f"r-{n}", **extra)
            replicas.append(stack.enter_context(run_dispatcher(log_dir, env)))
        yield Fleet(store, replicas, mark)


PLANNER_KEY = "{voicefleet}:reserve-planner"  # the replica planning the reserve launches its bots
WARM_ONE = {"RESERVE_MIN_IDLE": "1", "RESERVE_BUFFER": "0", "RESERVE_BURST": "0"}  # one reserve bot, no more


def warm_start_elsewhere(fleet: Fleet) -> tuple[str, str, httpx.Response]:
    """A start at the replica that does not hold the fleet's one reserve bot (`WARM_ONE`), which it
    claims there: (starter, holder, the start's answer)."""
    wait_until(lambda: greeted(fleet.store) >= 1 and fleet.store.admin().get(PLANNER_KEY), "a reserve bot's hello",
               timeout=90, detail=fleet.logs)
    holder = fleet.replicas[int(str(fleet.store.admin().get(PLANNER_KEY)).removeprefix("r-"))].base_url
    (starter,) = fleet.others(holder)
    started = post(starter, "/start?wait=started", json={})
    assert started.status_code == 201, started.text
    session_id = started.json()["session_id"]
    events = [e["event"] for e in get(starter, f"/sessions/{session_id}/timeline").json()["events"]]
    assert "claimed" in events, f"the start was not warm: {events}\n{fleet.logs()}"
    return starter, holder, started


def call(method: str, base_url: str, path: str, *, headers: dict[str, str] | None = None,
         **kwargs: object) -> httpx.Response:
    return httpx.request(method, base_url + path, timeout=TIMEOUT, headers={**AUTH, **(headers or {})},
                         **kwargs)  # type: ignore[arg-type]


def post(base_url: str, path: str, **kwargs: object) -> httpx.Response:
    return call("POST", base_url, path, **kwargs)  # type: ignore[arg-type]


def get(base_url: str, path: str) -> httpx.Response:
    return call("GET", base_url, path)


def delete(base_url: str, path: str) -> httpx.Response:
    return call("DELETE", base_url, path)
