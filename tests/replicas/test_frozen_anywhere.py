"""A frozen bot serves a start at any replica: three real replicas on a real redis-server (the
stack's access rules) and the fake Fly API. r-0's channel holds the deployment's one reserve bot,
frozen (its machine suspended, its process paused); a start at r-1, whose channel holds no bot,
takes it (so does one from a caller who will not wait for a cold start, `maxWaitSeconds`: r-1
counts the frozen bot as claimable): r-1 takes its record from r-0, resumes its machine, and the
bot, dialling again through the balancer, reaches r-2, which assigns it the session. The session
talks: its offer, sent to r-1, is answered by that very process.

Real processes: redis-server, `python -m dispatcher` × 3, a bot process per Fly machine
(tests/replicas/fly_bots.py) and the balancer in front of the channel (tests/replicas/front.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.fixtures import fake_fly
from tests.fakes.fly import FakeFly
from tests.replicas.test_redial import AUTH, DEADLINE, Fleet, fly_fleet, machine_of, offer, port_of, until
from tests.support.redis_server import RedisServer

__all__ = ["fake_fly"]
pytestmark = pytest.mark.slow  # three dispatchers, a redis-server and two bot processes

# One ready bot for the deployment, none kept hot: it is frozen once warm. A cold start is quoted
# tens of seconds (the estimate starts from this and one fast observation moves it by a fraction),
# so a caller who waits at most PATIENCE is refused unless a warm bot takes it; a resume is quoted
# under a second (Fly's "few hundred ms").
RESERVE = {"RESERVE_MIN_IDLE": "1", "RESERVE_BUFFER": "0", "RESERVE_BURST": "0", "RESERVE_MIN_HOT": "0",
           "RESERVE_COLD_START_SECONDS": "30", "LOG_LEVEL": "info"}
PATIENCE = 5.0


@pytest.fixture
def fleet(tmp_path: Path, store: RedisServer, fake_fly: FakeFly) -> Iterator[Fleet]:
    with fly_fleet(tmp_path, store, fake_fly, [RESERVE] * 3) as running:  # every reserve bot dials r-0 first
        yield running


def reserve_machines(fly: FakeFly) -> list[dict[str, Any]]:
    return [m for m in list(fly.machines.values()) if m["name"].startswith("vf-idle-")
            and "voicefleet_session" not in m["config"]["metadata"] and m["state"] != "destroyed"]


@pytest.mark.parametrize("patience", [{"maxWaitSeconds": PATIENCE}, {}], ids=["impatient", "patient"])
def test_a_start_at_a_replica_holding_no_bot_thaws_a_bot_frozen_at_another_and_talks_through_a_third(
    fleet: Fleet, fake_fly: FakeFly, patience: dict[str, float]
) -> None:
    replicas, balancer, bots, store = fleet
    holder, starter, third = replicas

    def logs() -> str:
        return "\n".join(f"--- {r.base_url}\n{r.log()[-4000:]}" for r in replicas)

    # The reserve at rest: its one bot frozen at r-0 (the only machine the reserve keeps).
    frozen = until("the reserve's bot frozen", lambda: (found := reserve_machines(fake_fly)) and all(
        m["state"] == "suspended" for m in found) and found, logs)
    [machine] = frozen
    bot_id = machine["config"]["metadata"]["voicefleet_idle"]
    assert store.get(f"{{voicefleet}}:admitted:{bot_id}") == "r-0"  # its channel was at r-0
    until("the pool shows it frozen at r-0", lambda: f'"{bot_id}","frozen"' in str(
        store.hget("{voicefleet}:reserve-pool", "r-0") or ""), logs)
    pid = bots.pid_of(machine["id"])
    assert machine["id"] in bots.paused

    balancer.route_to(port_of(third))  # the bot, once resumed, dials r-2: neither its holder nor the starter
    answer = httpx.post(f"{starter.base_url}/start?wait=started", json=patience, headers=AUTH,
                        timeout=DEADLINE)
    assert answer.status_code == 201, f"{answer.text}\n{logs()}"
    session_id = answer.json()["session_id"]

    assert machine_of(fake_fly, session_id)["id"] == machine["id"], "the start did not take the frozen bot"
    assert machine["id"] not in bots.paused  # resumed: the same process, warm as it was
    assert store.get(f"{{voicefleet}}:claim:{bot_id}") == session_id  # claimed once, for this session
    until("r-2 owning the session (its channel is there)",
          lambda: store.get(f"{{voicefleet}}:owner:{session_id}") == "r-2", logs)
    talked = offer(starter.base_url, session_id)
    assert talked.status_code == 200, talked.text
    assert talked.json()["bot"] == f"{session_id}/{pid}"  # the thawed process answers, through r-2
    assert store.get(f"{{voicefleet}}:thaw:{bot_id}") is None  # its way back was spent
