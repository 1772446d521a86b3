"""One warm reserve for the deployment: three real replicas on a real redis-server (the stack's
access rules) hold RESERVE_MIN_IDLE idle bots between them, not three times it; a start at a
replica whose channel holds no idle bot is still warm (another replica's bot is claimed for it);
and a planner killed outright hands planning over within one lease."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest

from tests.replicas.conftest import Fleet, delete, get, greeted, post, start_fleet
from tests.support.processes import children_of, pid_alive
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # three real dispatchers, a redis-server and their bots: about a minute

MIN_IDLE = 2
LEASE = 6.0  # the planning lease: short, so that the handover is seen within the test
PLANNER_KEY = "{voicefleet}:reserve-planner"


def idle_bots(fleet: Fleet) -> list[int]:
    """Bot processes waiting in the reserve (a bot in a session carries its session id, cold in its
    environment or warm in its answers: a claimed one is counted out by the caller)."""
    idle = []
    for pid in fleet.bots():
        with contextlib.suppress(OSError), open(f"/proc/{pid}/environ", "rb") as environ:
            if b"VOICEFLEET_SESSION_ID=" not in environ.read():
                idle.append(pid)
    return idle


def held_by(fleet: Fleet, replica_id: str, pids: list[int]) -> list[int]:
    replica = fleet.replicas[int(replica_id.removeprefix("r-"))]
    return [pid for pid in pids if pid in children_of(replica.process.pid)]


def planner(store: RedisServer) -> str | None:
    value = store.admin().get(PLANNER_KEY)
    return None if value is None else str(value)


def test_three_replicas_hold_the_deployments_minimum_and_claim_across_replicas(
    tmp_path: Path, store: RedisServer
) -> None:
    with start_fleet(tmp_path, store, 3, RESERVE_MIN_IDLE=str(MIN_IDLE), RESERVE_BUFFER="0", RESERVE_BURST="0",
                     REDIS_LEASE_SECONDS=str(LEASE)) as fleet:
        # Idle once each has said hello (a spawned process is seconds from it on a busy machine, and
        # its idle time is counted from the hello).
        wait_until(lambda: len(idle_bots(fleet)) >= MIN_IDLE and greeted(store) >= MIN_IDLE, "the reserve's idle bots",
                   timeout=90, detail=fleet.logs)
        # Several planning ticks later the deployment still holds its minimum, not one per replica.
        settle = time.monotonic() + 5
        while time.monotonic() < settle:
            assert len(idle_bots(fleet)) <= MIN_IDLE, f"the replicas hold {len(idle_bots(fleet))} idle bots"
            time.sleep(0.2)
        holder = planner(store)
        assert holder is not None, "no replica holds the planning lease"
        idle = idle_bots(fleet)
        assert len(idle) == MIN_IDLE and held_by(fleet, holder, idle) == idle  # bots dial their launcher

        # A start at a replica whose channel holds no idle bot: the holder's bot is claimed for it.
        dead = fleet.replicas[int(holder.removeprefix("r-"))]
        elsewhere = next(r for r in fleet.replicas if r is not dead)
        answer = post(elsewhere.base_url, "/start?wait=started", json={})
        assert answer.status_code == 201, answer.text
        session_id = answer.json()["session_id"]
        offer = post(elsewhere.base_url, f"/sessions/{session_id}/api/offer", json={"sdp": "v=0", "type": "offer"})
        assert offer.status_code == 200, offer.text
        bot_session, pid = offer.json()["bot"].split("/")
        assert bot_session == session_id and int(pid) in idle, "the start was cold: no idle bot was claimed"
        assert store.admin().get(f"{{voicefleet}}:claim:{_bot_id_of(int(pid))}") == session_id
        # Its cost's idle share was measured where the bot waited (idle through the 5 s above at least)
        # and came back with the claim.
        cost = get(elsewhere.base_url, f"/sessions/{session_id}").json()["cost"]
        assert cost["idle_seconds"] >= 5 and cost["provider"] == "local", cost
        assert delete(elsewhere.base_url, f"/sessions/{session_id}").status_code in (202, 204)

        # The planner dies outright: another replica plans within a lease and refills the reserve.
        # Within a lease because the store drops a lease nobody renews (its TTL, at most LEASE);
        # the wall time of the handover is also the machine's load, so it is waited for, not timed.
        assert 0 < store.admin().pttl(PLANNER_KEY) <= LEASE * 1000
        dead.process.kill()
        survivors = [r for r in fleet.replicas if r is not dead]
        new_holder = wait_until(lambda: (p := planner(store)) not in (None, holder) and p,
                                "another replica taking the planning lease", detail=fleet.logs)
        assert new_holder in {f"r-{fleet.replicas.index(r)}" for r in survivors}
        wait_until(lambda: len([p for p in idle_bots(fleet) if pid_alive(p)
                                and held_by(fleet, new_holder, [p])]) >= MIN_IDLE,
                   "the new planner's idle bots", timeout=90, detail=fleet.logs)


def _bot_id_of(pid: int) -> str:
    """The reserve bot id a local bot process was launched as (in its environment)."""
    with open(f"/proc/{pid}/environ", "rb") as environ:
        for item in environ.read().split(b"\0"):
            if item.startswith(b"BOT_MACHINE_ID="):
                return item.split(b"=", 1)[1].decode()
    raise AssertionError(f"bot {pid} has no machine id in its environment")
