"""The dispatcher is SIGKILLed while a machine create is in flight, then restarted: the client's
retry with the same `Idempotency-Key` gets that session and Fly ends up with exactly one machine
for it; once the session is past its deadline, the restarted dispatcher's reaper removes the
machine and its room. Real `python -m dispatcher` processes against the fake Fly and Daily."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.daily import FakeDaily
from tests.fakes.fly import FakeFly
from tests.faults.fleet import settle
from tests.support.processes import run_dispatcher
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # real client timeouts against held calls: minutes in all

KEY = "killed-test-key-0123456789"


def dispatcher_env(fly: FakeFly, daily: FakeDaily) -> dict[str, str]:
    return {
        "MACHINES": "fly",
        "DISPATCHER_API_KEYS": KEY,
        **fly.env,
        **daily.env,
        "MAX_SESSION_SECONDS": "60",
        "REAPER_INTERVAL_SECONDS": "0.2",
        "REAPER_GRACE_SECONDS": "0",
        "LOG_LEVEL": "warning",
    }


def machines_of(fly: FakeFly, session_id: str) -> list[dict[str, Any]]:
    return [m for m in list(fly.machines.values()) if m["config"]["metadata"]["voicefleet_session"] == session_id]


def start(base_url: str, key: str, timeout: float = 10) -> httpx.Response:
    headers = {"Authorization": f"Bearer {KEY}", "Idempotency-Key": key}
    return httpx.post(f"{base_url}/start", json={"body": {"persona": "x"}}, headers=headers, timeout=timeout)


def test_a_dispatcher_killed_mid_launch_then_restarted_gives_the_retry_one_machine_and_reaps_it(
    fake_fly: FakeFly, fake_daily: FakeDaily, tmp_path: Path
) -> None:
    # Its reapers list every 0.2 s, five times Fly's list limit, and the killed dispatcher's lists
    # count against the same app as its successor's: lists are not what this test is about.
    fake_fly.list_per_second, fake_fly.list_burst = 1000, 1000
    env = dispatcher_env(fake_fly, fake_daily)
    key = f"call-{uuid.uuid4().hex}"
    # The create the first dispatcher sends is held until the retry has been answered: it lands
    # after its sender is dead and after the retry's own create, the order a hang would make.
    hold = fake_fly.hold(times=1, method="POST", path_suffix="/machines")
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()

    with run_dispatcher(tmp_path / "first", env) as first, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(start, first.base_url, key)
        wait_until(lambda: fake_fly.calls_to("POST", "/machines"), "the create to reach Fly", timeout=10)
        first.process.kill()  # SIGKILL: no clean-up, no answer
        first.process.wait()
        with pytest.raises(httpx.TransportError):
            pending.result()

    with run_dispatcher(tmp_path / "second", env) as second:
        retried = start(second.base_url, key)
        assert retried.status_code in (200, 201), retried.text
        session_id = retried.json()["session_id"]
        hold.release()
        settle(fake_fly, 10)  # the dead dispatcher's create has been answered too (409: the name is taken)
        assert again_is_same(second.base_url, key, session_id)
        machines = machines_of(fake_fly, session_id)
        assert len(machines) == 1, machines  # never created twice, whichever create won the name
        assert f"vf-{session_id}" in fake_daily.rooms

        # The session outlives its deadline (as if an hour had passed): the reaper takes it down.
        machines[0]["config"]["metadata"]["voicefleet_created_at"] = str(int(time.time()) - 3600)
        wait_until(
            lambda: (
                all(m["state"] == "destroyed" for m in machines_of(fake_fly, session_id))
                and f"vf-{session_id}" not in fake_daily.rooms
            ),
            "the reaper to remove the machine and its room",
            timeout=10,
        )
    assert len(machines_of(fake_fly, session_id)) == 1


def again_is_same(base_url: str, key: str, session_id: str) -> bool:
    again = start(base_url, key)
    return again.status_code == 200 and again.json()["session_id"] == session_id
