"""The honest wait, learnt and kept: a real `python -m dispatcher` on a real redis-server (the AWS stack's
store user and access string), every start cold and slow (stand-in bots that spend 3 s before they
dial, against a configured 0.5 s). The first start is told the default and says so; once one start
is measured the next is told a figure moved from the default toward what it took (one start does
not set it alone: dispatcher/reserve/start_times.py); and a dispatcher started afresh on the same
store tells its first start the same measured figure, not the default."""

from __future__ import annotations

import time
from pathlib import Path

from tests.replicas.conftest import call, get, post, replica_env
from tests.support.processes import run_dispatcher
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

START_SECONDS = 3.0
CONFIGURED_SECONDS = 0.5
ADMIN_KEY = "honest-wait-admin-key-0123456789"  # /metrics is an admin key's


def _env(store: RedisServer, tmp_path: Path) -> dict[str, str]:
    return replica_env(store, str(tmp_path), "r-0", STANDIN_START_SECONDS=str(START_SECONDS),
                       RESERVE_MAX_IDLE="0", RESERVE_COLD_START_SECONDS=str(CONFIGURED_SECONDS),
                       DISPATCHER_ADMIN_KEYS=ADMIN_KEY)


def _started(base_url: str, session_id: str, timeout: float = 30.0) -> float:
    """Seconds until the session is no longer `starting`."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if get(base_url, f"/sessions/{session_id}").json()["status"] != "starting":
            return time.monotonic() - began
        time.sleep(0.1)
    raise AssertionError(f"session {session_id} still starting after {timeout} s")


def _told_length(answer: dict) -> float:
    """The start's whole length as told: waited so far plus the wait told. The wait told alone shrinks
    with the time the answer took (counted from the launch), which a loaded machine stretches."""
    return time.time() - answer["created_at"] + answer["ready_in_seconds"]


def planned(base_url: str) -> bool:
    """The planner's ready target is published (set only once a tick has planned)."""
    metrics = call("GET", base_url, "/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    return "voicefleet_reserve_ready_target{" in metrics.text


def test_the_wait_told_is_learnt_from_measured_starts_and_kept_across_a_restart(
    tmp_path: Path, store: RedisServer
) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    with run_dispatcher(tmp_path / "one", _env(store, tmp_path)) as first:
        began = time.monotonic()
        answer = post(first.base_url, "/start", json={"body": {}}).json()
        assert answer["status"] == "starting" and answer["ready_in_basis"] == "default", answer
        assert answer["ready_in_seconds"] <= CONFIGURED_SECONDS
        _started(first.base_url, answer["session_id"])
        took = time.monotonic() - began  # the whole start as its caller waited for it (and a poll's 0.1 s)
        assert took >= START_SECONDS
        deadline = time.monotonic() + 20
        while (second := post(first.base_url, "/start", json={"body": {}}).json())["ready_in_basis"] == "default":
            assert time.monotonic() < deadline, "the first cold start was never measured"
            time.sleep(0.5)
        second_length = _told_length(second)
        # Learnt: longer than the configured prior, no longer than the start measured (told as a
        # whole: the wait told alone is less by however long this answer took on a busy machine).
        assert 2 * CONFIGURED_SECONDS < second_length < took, (second, second_length, took)
    with run_dispatcher(tmp_path / "two", _env(store, tmp_path)) as restarted:
        # Its reserve's first tick read the store's measured starts first and, the planning lease
        # handed over by the stopped one, ended by planning (no sleep: a loaded machine ticks late).
        wait_until(lambda: planned(restarted.base_url), "the restarted dispatcher's first reserve tick",
                   detail=restarted.log)
        third = post(restarted.base_url, "/start", json={"body": {}}).json()
        assert third["ready_in_basis"] == "measured", third
        third_length = _told_length(third)
        assert abs(third_length - second_length) < 0.25 * second_length, (third, second, third_length, second_length)
    assert not store.refused()  # every key and command within the stack user's rules
