"""The automatic rollback judges on the deployment's sample: two real `python -m dispatcher` processes
on one redis-server, signed in as the AWS stack's store user, each running its own local bots whose
canary dies at boot. A breach the stable release's sample completes, its sessions ending at the replica
that saw none of the canary's, is acted on at once: the canary at 0 at both within 2 s, one audit line,
one webhook; the canary's failures (machine exits seen at one replica) and the stable's sample (at the
other) are counted together.

One real rollback is all this file runs. How the shared sample decides, on the real watch and a real
redis-server (two replicas each seeing half the canary rolled back at the minimum counted over both; a
weight change between the stable's sample and the canary's keeping both samples; a session both see
counted once), is checked in tests/dispatcher/store/test_release_rollback_replicas.py."""

from __future__ import annotations

import asyncio
import base64
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.replicas.conftest import replica_env
from tests.support import stable_last
from tests.support.hook_receiver import hook_receiver
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.redis_server import RedisServer
from tests.support.releases import ADMIN, ADMIN_KEY

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
