"""What a key's budgets add to a start: `POST /start` at one real `python -m dispatcher` replica on a
redis-server (the AWS stack's store user), its key with no budget and with all four budgets set (each
checked at every start), the rounds interleaved so the machine's load falls on both alike; each
session is stopped after its start. Then the check itself, `Budgets.check` with four budgets, timed
in this process over many calls.

The check reads only the replica's memory (the budgets applied, the usage read once a second): a
start makes no store call for it. Printed: median, 95th percentile and mean in milliseconds.

    uv run --all-groups python -m bench.budget_start --rounds 60
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import timeit
from pathlib import Path

import httpx

from dispatcher.sessions.budgets import Budgets
from tests.replicas.conftest import replica_env
from tests.support.processes import run_dispatcher
from tests.support.redis_server import redis_server

ADMIN_KEY = "vf-bench-budget-admin-7e2d4c1a90"
TEAM_KEY = "team-bench-budget-key-3b9f0e6c21"
ADMIN, TEAM = {"Authorization": f"Bearer {ADMIN_KEY}"}, {"Authorization": f"Bearer {TEAM_KEY}"}
BUDGETS = {"budget.team.minutes-day": 10**6, "budget.team.minutes-month": 10**6,
           "budget.team.spend-month": 10**6, "budget.team.sessions": 10**6}
OFF = dict.fromkeys(BUDGETS)


def summary(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"| {name} | {len(ms)} | {statistics.median(ms):.2f} ms | {p95:.2f} ms | {statistics.fmean(ms):.2f} ms |"


def timed_start(client: httpx.Client, base_url: str) -> float:
    began = time.perf_counter()
    answer = client.post(f"{base_url}/start", json={"body": {}}, headers=TEAM)
    took = time.perf_counter() - began
    assert answer.status_code == 201, answer.text
    stopped = client.delete(f"{base_url}/sessions/{answer.json()['session_id']}", headers=TEAM)
    assert stopped.status_code in (200, 204), stopped.text
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=60, help="starts with budgets on, and as many off")
    args = parser.parse_args()
    timings: dict[str, list[float]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as work, redis_server(Path(work)) as store:
        env = replica_env(store, work, "bench-budgets", DISPATCHER_API_KEYS=f"team:{TEAM_KEY}",
                          DISPATCHER_ADMIN_KEYS=ADMIN_KEY, BOT_CHANNEL_TOKEN="bench-budget-deployment-secret-0123",
                          RESERVE_MAX_IDLE="0")
        with run_dispatcher(Path(work), env) as replica, httpx.Client(timeout=30) as client:
            timed_start(client, replica.base_url)  # the first start's imports and connections, not counted
            for n in range(2 * args.rounds):
                mode = "on" if n % 2 else "off"
                changed = client.patch(f"{replica.base_url}/capacity", json=BUDGETS if mode == "on" else OFF,
                                       headers=ADMIN)
                assert changed.status_code == 200, changed.text
                timings[mode].append(timed_start(client, replica.base_url))
    budgets = Budgets()
    budgets.limit(BUDGETS)
    calls = 200_000
    check = timeit.timeit(lambda: budgets.check("team"), number=calls) / calls
    print("| budgets | starts | median | p95 | mean |\n|---|---|---|---|---|")
    print(summary("off", timings["off"]))
    print(summary("on (four budgets)", timings["on"]))
    print(f"\nBudgets.check with four budgets, in this process: {check * 1e6:.2f} µs a call ({calls} calls)")


if __name__ == "__main__":
    main()
