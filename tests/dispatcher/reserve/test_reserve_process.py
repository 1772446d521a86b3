"""`python -m dispatcher` with its default local reserve, as a real process."""

from __future__ import annotations

import shlex
import time

import httpx

from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_LOCAL_BOT_ENV
from tests.support.processes import processes_with_env, run_dispatcher, wait_gone


def reserve_bots(base: str, state: str) -> float:
    for line in httpx.get(f"{base}/metrics", timeout=5).text.splitlines():
        if line.startswith("voicefleet_reserve_bots{") and f'state="{state}"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no reserve gauge")


def wait_idle(base: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while reserve_bots(base, "idle") < count:  # the gauge is refreshed every reserve tick
        assert time.monotonic() < deadline, f"the reserve never held {count} idle bots"
        time.sleep(0.1)


def test_the_local_reserve_is_on_by_default_and_the_first_start_is_warm(tmp_path):
    env = {**STANDIN_LOCAL_BOT_ENV, "LOCAL_BOT_COMMAND": shlex.join(STANDIN_BOT),
           "STANDIN_MODE": "serve", "STANDIN_MARK": str(tmp_path)}
    with run_dispatcher(tmp_path, env) as running:
        wait_idle(running.base_url, 1)
        assert httpx.post(f"{running.base_url}/start", json={}, timeout=20).status_code == 201
        text = httpx.get(f"{running.base_url}/metrics", timeout=5).text
        assert 'voicefleet_reserve_claims_total{outcome="warm_hit",provider="local",release="default"} 1.0' in text


def test_a_killed_dispatcher_leaves_neither_idle_nor_claimed_bots(tmp_path):
    env = {**STANDIN_LOCAL_BOT_ENV, "LOCAL_BOT_COMMAND": shlex.join(STANDIN_BOT),
           "STANDIN_MODE": "serve", "STANDIN_MARK": str(tmp_path),
           "RESERVE_MIN_IDLE": "2"}
    with run_dispatcher(tmp_path, env) as running:
        wait_idle(running.base_url, 2)
        claimed = httpx.post(f"{running.base_url}/start?wait=started", json={}, timeout=20)
        assert claimed.status_code == 201
        bots = processes_with_env("STANDIN_MARK", str(tmp_path))
        assert len(bots) >= 2  # the claimed one and at least one idle one
        running.process.kill()
        running.process.wait()
        assert wait_gone(bots) == []
        # Nor any bot forked while the dispatcher died (it dies at once: dispatcher/machines/local/parent_death.py).
        assert wait_gone(processes_with_env("STANDIN_MARK", str(tmp_path))) == []
