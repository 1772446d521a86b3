"""The automatic rollback judges on the deployment's sample: two real `python -m dispatcher` processes
on one redis-server, signed in as the AWS stack's store user, each running its own local bots. The
canary's machines die at boot and its sessions are split evenly between the replicas, so neither
sees the rule's minimum sample by itself: it is rolled back once both together have it."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.replicas.conftest import API_KEY, replica_env
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.redis_server import RedisServer
from tests.support.releases import ADMIN_KEY, admin, drawn_start, listed_releases, session_over, until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # real bot processes importing Pipecat

BOTS = Path(__file__).resolve().parents[1] / "bots"
SAMPLE = 6  # RELEASE_HEALTH_MIN_CANARY and _MIN_STABLE: 6 of 6 failed against 0 of 6 breaches
WAIT = 240.0  # a bot's first import of Pipecat on a busy machine: a safety net, never what is checked


def test_two_replicas_each_seeing_half_the_canary_roll_it_back_at_the_minimum_sample_overall(
        tmp_path: Path, store: RedisServer) -> None:
    def replica(name: str, stack: ExitStack) -> DispatcherProcess:
        folder = tmp_path / name
        folder.mkdir()
        env = replica_env(store, str(tmp_path), name, BOT_RELEASES=f"stable={BOTS / 'greeter.py'},"
                          f"next={BOTS / 'crash_at_boot.py'}", RELEASE_WEIGHTS="stable=100,next=0",
                          DISPATCHER_ADMIN_KEYS=ADMIN_KEY, RESERVE_MAX_IDLE="0", LOG_LEVEL="info",
                          RELEASE_HEALTH_MIN_CANARY=str(SAMPLE), RELEASE_HEALTH_MIN_STABLE=str(SAMPLE),
                          BOT_CONNECT_TIMEOUT_SECONDS="6")  # a stable session nobody joins: no fault of its bot
        for standin in ("LOCAL_BOT_COMMAND", "LOCAL_BOT_ENV"):  # the real bot host, dying as the release does
            env.pop(standin, None)
        return stack.enter_context(run_dispatcher(folder, env))

    with ExitStack() as fleet:
        a, b = replica("r-a", fleet), replica("r-b", fleet)
        canaries = asyncio.run(_sessions(a, b))  # the canary given 50 % at one replica half-way
        until(lambda: listed_releases(a.base_url)["next"]["weight"] == 0, timeout=WAIT)
        seen = listed_releases(b.base_url)["next"]
    assert canaries == {"r-a": SAMPLE // 2, "r-b": SAMPLE // 2}  # neither replica saw the minimum by itself
    assert seen["weight"] == 0 and seen["health"]["state"] == "breached"
    assert seen["health"]["reason"].startswith(f"{SAMPLE} of {SAMPLE} sessions failed ({SAMPLE} failed to start)")
    assert store.refused() == []  # nothing the stack's user may not do


async def _sessions(a: DispatcherProcess, b: DispatcherProcess) -> dict[str, int]:
    """The stable release's sample first, started at both replicas and over (the canary at 0); then the
    canary at 50 % (a weight change at one replica: every sample stands), and drawn starts, each at the
    replica that has seen fewer canary sessions, until the canary has its sample. The canary's
    sessions are never read (a read is one way a dispatcher sees a machine's end): each replica's own
    provider reports its bots' exits."""
    clients = {name: api_client(base_url=d.base_url, timeout=WAIT, headers={"Authorization": f"Bearer {API_KEY}"})
               for name, d in (("r-a", a), ("r-b", b))}
    canaries = dict.fromkeys(clients, 0)
    stable: list[tuple[httpx.AsyncClient, str]] = []
    try:
        for n in range(1, SAMPLE + 1):
            api = clients[("r-a", "r-b")[n % 2]]
            session_id, release = await drawn_start(api, n)
            assert release == "stable"
            stable.append((api, session_id))
        await asyncio.gather(*(session_over(api, s) for api, s in stable))
        given = admin("PUT", a.base_url, "/releases/next", json={"weight": 50})
        assert given.status_code == 200, given.text
        until(lambda: listed_releases(b.base_url)["next"]["weight"] == 50, timeout=WAIT)
        while sum(canaries.values()) < SAMPLE:
            name = min(canaries, key=lambda r: (canaries[r], r))
            _, release = await drawn_start(clients[name], n := n + 1)
            if release == "next":
                canaries[name] += 1
    finally:
        for client in clients.values():
            await client.aclose()
    return canaries
