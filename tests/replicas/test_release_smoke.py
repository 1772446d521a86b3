"""A release's smoke state is the deployment's, not one replica's: two real `python -m dispatcher`
processes on one redis-server, signed in as the AWS stack's store user, real parrot bots and an
aiortc caller. The smoke session started at one replica is seen running at the other (which refuses
a second), its verdict reaches both, and only then does the other take a weight for the release."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.replicas.conftest import replica_env
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.redis_server import RedisServer
from tests.support.releases import ADMIN, ADMIN_KEY, admin, until
from tests.support.webrtc_client import WebRTCClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # real bot processes importing Pipecat

PARROT = Path(__file__).resolve().parents[2] / "examples" / "parrot" / "bot.py"
WAIT = 240.0  # a bot's first import of Pipecat on a busy machine: a safety net, never what is checked


def smoke_of(d: DispatcherProcess, name: str = "next") -> dict[str, Any]:
    listed = admin("GET", d.base_url, "/releases").json()["releases"]
    return dict(next(r for r in listed if r["name"] == name)["smoke"])


def test_the_smoke_state_and_its_verdict_are_every_replicas(tmp_path: Path, store: RedisServer) -> None:
    def replica(name: str, stack: ExitStack) -> DispatcherProcess:
        folder = tmp_path / name
        folder.mkdir()
        env = replica_env(store, str(tmp_path), name, BOT_RELEASES=f"stable={PARROT},next={PARROT}",
                          DISPATCHER_ADMIN_KEYS=ADMIN_KEY, RESERVE_MAX_IDLE="0", VOICEFLEET_ICE_LOOPBACK="1",
                          LOG_LEVEL="info")
        for standin in ("LOCAL_BOT_COMMAND", "LOCAL_BOT_ENV"):  # the real bot, reporting what its caller heard
            env.pop(standin, None)
        return stack.enter_context(run_dispatcher(folder, env))

    with ExitStack() as fleet:
        a, b = replica("r-a", fleet), replica("r-b", fleet)
        refused = admin("PUT", b.base_url, "/releases/next", json={"weight": 10})
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "release_not_smoke_tested"

        started = admin("POST", a.base_url, "/releases/next/smoke")
        assert started.status_code == 201, started.text
        session_id = started.json()["session_id"]
        until(lambda: smoke_of(b)["status"] == "running", timeout=WAIT)
        second = admin("POST", b.base_url, "/releases/next/smoke")
        assert second.status_code == 409 and second.json()["error"]["code"] == "smoke_running"
        assert second.json()["error"]["session_id"] == session_id

        asyncio.run(_call(a.base_url + started.json()["offer_url"], started.json().get("iceConfig")))
        until(lambda: smoke_of(b)["status"] != "running", timeout=WAIT)
        assert smoke_of(b)["status"] == "passed" and smoke_of(b)["session_id"] == session_id, a.log()[-3000:]
        assert smoke_of(a) == smoke_of(b)
        given = admin("PUT", b.base_url, "/releases/next", json={"weight": 10})
        assert given.status_code == 200, given.text
    assert store.refused() == []  # nothing the stack's user may not do


async def _call(offer_url: str, ice: dict[str, Any] | None) -> None:
    """The smoke session's caller: connects with the admin key and stays until the bot is heard."""
    async with WebRTCClient(offer_url, headers=ADMIN, ice_config=ice) as client:
        for _ in range(int(WAIT / 0.2)):
            if client.result().connect_to_first_audio is not None:
                return
            await asyncio.sleep(0.2)
    raise AssertionError("the smoke session's caller never heard the bot")


