"""Three replicas against the fake Fly and Daily (machines that outlive any dispatcher, as in the
cloud), sessions started at random replicas; one replica is SIGKILLed and one SIGTERMed
mid-session: every session still answers at the survivor, ends cleanly there, and the reaper
leaves no machine or room behind."""

from __future__ import annotations

import random
import signal
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.daily import FakeDaily
from tests.fakes.fixtures import fake_daily, fake_fly
from tests.fakes.fly import FakeFly
from tests.replicas.conftest import LEASE_SECONDS
from tests.support.processes import run_dispatcher
from tests.support.redis_server import RedisServer

__all__ = ["fake_daily", "fake_fly"]
pytestmark = pytest.mark.slow  # three real dispatchers and a redis-server: about half a minute

KEY = "replicas-lost-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


def env(fly: FakeFly, daily: FakeDaily, store: RedisServer, name: str) -> dict[str, str]:
    return {"MACHINES": "fly", "DISPATCHER_API_KEYS": KEY, **fly.env, **daily.env, **store.env,
            "REPLICA_ID": name, "REDIS_LEASE_SECONDS": LEASE_SECONDS, "MAX_SESSION_SECONDS": "60",
            "REAPER_INTERVAL_SECONDS": "0.2", "REAPER_GRACE_SECONDS": "0", "SHUTDOWN_GRACE_SECONDS": "20",
            "LOG_LEVEL": "warning", "FLY_LIST_RATE": "100", "FLY_LIST_BURST": "100"}


def machines_of(fly: FakeFly, session_id: str) -> list[dict[str, Any]]:
    return [m for m in list(fly.machines.values()) if m["config"]["metadata"]["voicefleet_session"] == session_id]


def test_a_killed_and_a_drained_replica_lose_no_session(
    tmp_path: Path, store: RedisServer, fake_fly: FakeFly, fake_daily: FakeDaily
) -> None:
    pick = random.Random(24)
    # Each replica's reaper lists every 0.2 s here (its default is 60 s) to finish within the test:
    # more than Fly's 1 list/s, which is not what this tests (tests/dispatcher/machines/test_fly_lists.py does).
    fake_fly.list_per_second, fake_fly.list_burst = 1000, 1000
    with ExitStack() as stack:
        replicas = []
        for n in range(3):
            (tmp_path / f"r{n}").mkdir()
            replicas.append(stack.enter_context(run_dispatcher(tmp_path / f"r{n}",
                                                               env(fake_fly, fake_daily, store, f"r-{n}"))))
        urls = [r.base_url for r in replicas]
        sessions = {}
        for n in range(9):
            key = {**AUTH, "Idempotency-Key": f"lost-{n}"}
            answer = httpx.post(f"{pick.choice(urls)}/start", json={}, headers=key, timeout=30)
            assert answer.status_code == 201, answer.text
            sessions[answer.json()["session_id"]] = f"lost-{n}"

        killed, drained, survivor = replicas
        killed.process.kill()  # SIGKILL: no goodbye, its requests and records just stop
        drained.process.send_signal(signal.SIGTERM)
        # It drains and exits within its grace (uvicorn re-raises the SIGTERM once it shut down cleanly).
        assert drained.process.wait(timeout=60) in (0, -signal.SIGTERM), drained.log()
        assert "Traceback" not in drained.log()

        for session_id, key in sessions.items():
            status = httpx.get(f"{survivor.base_url}/sessions/{session_id}", headers=AUTH, timeout=30)
            assert status.status_code == 200 and status.json()["status"] in ("starting", "started"), status.text
            retry = httpx.post(f"{survivor.base_url}/start", json={}, timeout=30,
                               headers={**AUTH, "Idempotency-Key": key})
            assert (retry.status_code, retry.json()["session_id"]) == (200, session_id)  # a replay, not a launch
            assert len(machines_of(fake_fly, session_id)) == 1
        for session_id in list(sessions)[:5]:  # ended by the client…
            stopped = httpx.delete(f"{survivor.base_url}/sessions/{session_id}", headers=AUTH, timeout=30)
            assert stopped.status_code in (202, 204)
        for session_id in list(sessions)[5:]:  # …or outliving their deadline: the survivor's reaper
            for machine in machines_of(fake_fly, session_id):
                machine["config"]["metadata"]["voicefleet_created_at"] = str(int(time.time()) - 3600)
        deadline = time.monotonic() + 30
        while not all(m["state"] == "destroyed" for s in sessions for m in machines_of(fake_fly, s)) or any(
            f"vf-{s}" in fake_daily.rooms for s in sessions
        ):
            assert time.monotonic() < deadline, "an orphan machine or room outlived the reaper"
            time.sleep(0.1)
