"""The operators' time to ready (`voicefleet_start_to_ready_seconds`) counts a cold start whose
bot dials a replica other than the one that took its `POST /start`, as the load balancer in front
of the channel sends most of them with several replicas: once, summed over the replicas, and
from the start, not from the bot's hello.

Real processes: redis-server with the stack's store user, two `python -m dispatcher` replicas on
the fake Fly API, a bot process per Fly machine (tests/replicas/fly_bots.py) and the balancer in
front of the channel (tests/replicas/front.py), which sends every bot to r-0.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.fixtures import fake_fly
from tests.fakes.fly import FakeFly
from tests.replicas.test_redial import AUTH, DEADLINE, METRICS, Fleet, fly_fleet, until
from tests.support.processes import DispatcherProcess
from tests.support.redis_server import RedisServer

__all__ = ["fake_fly"]
pytestmark = pytest.mark.slow  # two dispatchers, a redis-server and a bot process

NO_RESERVE = {"RESERVE_MAX_IDLE": "0"}  # every start is cold
COLD = 'voicefleet_start_to_ready_seconds_{}{{path="cold",provider="fly",release="default"}}'


@pytest.fixture
def fleet(tmp_path: Path, store: RedisServer, fake_fly: FakeFly) -> Iterator[Fleet]:
    with fly_fleet(tmp_path, store, fake_fly, [NO_RESERVE, NO_RESERVE]) as running:  # bots dial r-0
        yield running


def metric(replica: DispatcherProcess, name: str) -> float:
    text = httpx.get(f"{replica.base_url}/metrics", headers=METRICS, timeout=DEADLINE).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " "))


def test_a_cold_bot_that_dials_another_replica_is_timed_once_from_its_start(fleet: Fleet) -> None:
    replicas, _, _, _ = fleet
    bots_replica, starter = replicas

    def logs() -> str:
        return "\n".join(f"--- {r.base_url}\n{r.log()[-3000:]}" for r in replicas)

    sent = time.monotonic()
    answer = httpx.post(f"{starter.base_url}/start", json={}, headers=AUTH, timeout=DEADLINE)
    assert answer.status_code == 201, f"{answer.text}\n{logs()}"
    session_id = answer.json()["session_id"]

    def ready_at_r0() -> bool:
        timeline = httpx.get(f"{bots_replica.base_url}/sessions/{session_id}/timeline", headers=AUTH,
                             timeout=DEADLINE)
        events = timeline.json().get("events", []) if timeline.status_code == 200 else []
        return any(e.get("event") == "ready" and e.get("replica") == "r-0" for e in events)

    until("the cold bot reported ready at r-0", ready_at_r0, logs)
    count = until("the start timed at a replica",
                  lambda: sum(metric(r, COLD.format("count")) for r in replicas) or None, logs)
    waited = time.monotonic() - sent
    assert count == 1, logs()  # once, at whichever replica heard `ready`
    seconds = sum(metric(r, COLD.format("sum")) for r in replicas)
    # From the start: the fake's boot and the bot's own start-up are in it, and no more than the
    # test waited (the store-relayed start time is another process's wall clock, on this host).
    assert 0 < seconds <= waited, (seconds, waited)
    assert metric(bots_replica, COLD.format("count")) == 1  # the replica that heard it counts it
