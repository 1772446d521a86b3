"""The automatic rollback judges on the deployment's sample: two real `python -m dispatcher` processes
on one redis-server, signed in as the AWS stack's store user, each running its own local bots. The
canary's machines die at boot and its sessions are split evenly between the replicas, so neither
sees the rule's minimum sample by itself: it is rolled back once both together have it. And a breach
the stable release's sample completes, its sessions ending at the replica that saw none of the
canary's, is acted on at once: the canary at 0 at both within 2 s, one audit line, one webhook."""

from __future__ import annotations

import asyncio
import base64
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.replicas.conftest import API_KEY, replica_env
from tests.support import stable_last
from tests.support.hook_receiver import hook_receiver
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.redis_server import RedisServer
from tests.support.releases import ADMIN, ADMIN_KEY, admin, drawn_start, listed_releases, session_over, until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # real bot processes importing Pipecat

BOTS = Path(__file__).resolve().parents[1] / "bots"
SAMPLE = 6  # RELEASE_HEALTH_MIN_CANARY and _MIN_STABLE: 6 of 6 failed against 0 of 6 breaches
WAIT = 240.0  # a bot's first import of Pipecat on a busy machine: a safety net, never what is checked
ACTS_WITHIN = 2.0  # seconds from the stable's minimum sample to the canary at 0, at either replica
SECRET = "whsec_" + base64.b64encode(b"replicas-stable-completes-breach").decode()


def _replica(tmp_path: Path, store: RedisServer, name: str, stack: ExitStack, **extra: str) -> DispatcherProcess:
    """A replica whose canary `next` dies at boot beside a stable greeter, judged at the minimum sample."""
    folder = tmp_path / name
    folder.mkdir()
    env = replica_env(store, str(tmp_path), name, BOT_RELEASES=f"stable={BOTS / 'greeter.py'},"
                      f"next={BOTS / 'crash_at_boot.py'}", DISPATCHER_ADMIN_KEYS=ADMIN_KEY, RESERVE_MAX_IDLE="0",
                      LOG_LEVEL="info", RELEASE_HEALTH_MIN_CANARY=str(SAMPLE), RELEASE_HEALTH_MIN_STABLE=str(SAMPLE),
                      BOT_CONNECT_TIMEOUT_SECONDS="6", **extra)  # a stable session nobody joins: no fault of its bot
    for standin in ("LOCAL_BOT_COMMAND", "LOCAL_BOT_ENV"):  # the real bot host, dying as the release does
        env.pop(standin, None)
    return stack.enter_context(run_dispatcher(folder, env))


def test_two_replicas_each_seeing_half_the_canary_roll_it_back_at_the_minimum_sample_overall(
        tmp_path: Path, store: RedisServer) -> None:
    def replica(name: str, stack: ExitStack) -> DispatcherProcess:
        return _replica(tmp_path, store, name, stack, RELEASE_WEIGHTS="stable=100,next=0")

    with ExitStack() as fleet:
        a, b = replica("r-a", fleet), replica("r-b", fleet)
        canaries = asyncio.run(_sessions(a, b))  # the canary given 50 % at one replica half-way
        until(lambda: listed_releases(a.base_url)["next"]["weight"] == 0, timeout=WAIT)
        # The other replica reads the traffic record again within its refresh: on a busy machine a
        # read straight after the first one's can still be the record before (seen once beside a hog).
        until(lambda: listed_releases(b.base_url)["next"]["weight"] == 0, timeout=WAIT)
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


async def test_a_breach_the_stable_sample_completes_at_the_other_replica_is_acted_on_at_once(
        tmp_path: Path, store: RedisServer) -> None:
    hooks: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        hooks.append(await request.json())
        return web.Response(status=204)

    def replica(name: str, stack: ExitStack, url: str) -> DispatcherProcess:
        return _replica(tmp_path, store, name, stack, RELEASE_WEIGHTS="stable=50,next=50", WEBHOOK_URL=url,
                        WEBHOOK_SECRET=SECRET, **stable_last.KEY_RELEASES)

    async with hook_receiver(hook) as url:
        with ExitStack() as fleet:
            a, b = replica("r-a", fleet, url), replica("r-b", fleet, url)
            async with (api_client(base_url=a.base_url, timeout=WAIT,
                                   headers={"Authorization": f"Bearer {stable_last.TESTER_KEY}"}) as tester,
                        api_client(base_url=b.base_url, timeout=WAIT,
                                   headers={"Authorization": f"Bearer {stable_last.CALLER_KEY}"}) as caller):
                seen = [asyncio.create_task(stable_last.first_seen_at_zero(api)) for api in (tester, caller)]
                # The canary's sessions at A, the stable's at B.
                reached = await stable_last.stable_after_canary(tester, caller, SAMPLE)
                seen_at = [await stable_last.seen_at_zero(s) for s in seen]
                for _ in range(100):  # sent by the outbox right after the rollback: a safety net
                    if any(h.get("type") == "release.rolled_back" for h in hooks):
                        break
                    await asyncio.sleep(0.1)
                history = (await tester.get("/releases/history", headers=ADMIN)).json()["changes"]
                logs = a.log() + b.log()
    rollbacks = [line for line in history if line["by"] == "automatic rollback"]
    assert len(rollbacks) == 1 and rollbacks[0]["to"] == {"stable": 100, "next": 0}, history
    delays = [rollbacks[0]["at"] - reached, *(at - reached for at in seen_at)]  # the record, then A's and B's answers
    assert max(delays) <= ACTS_WITHIN, delays
    assert [h["data"]["release"] for h in hooks if h.get("type") == "release.rolled_back"] == ["next"]
    assert logs.count("rolled back automatically") == 1
    assert store.refused() == []
