"""`python -m dispatcher` as a real process: configuration errors, and no orphaned bots."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys

import httpx
import pytest

from tests.dispatcher.conftest import STANDIN_BOT
from tests.support.processes import children_of, run_dispatcher, wait_gone


@pytest.fixture
def dispatcher_process(tmp_path):
    # No reserve: these count the bots of the sessions they start (test_reserve_process.py has the reserve).
    env = {"LOCAL_BOT_COMMAND": shlex.join(STANDIN_BOT), "STANDIN_MODE": "serve", "RESERVE_MAX_IDLE": "0"}
    with run_dispatcher(tmp_path, env) as running:
        yield running


def start_bots(base: str, count: int) -> None:
    for _ in range(count):
        assert httpx.post(f"{base}/start?wait=started", json={}, timeout=20).status_code == 201


def test_sigterm_stops_every_bot_before_the_dispatcher_exits(dispatcher_process):
    process, base = dispatcher_process.process, dispatcher_process.base_url
    start_bots(base, 2)
    bots = children_of(process.pid)
    assert len(bots) == 2
    process.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal so supervisors see why it exited.
    assert process.wait(timeout=15) == -signal.SIGTERM
    assert wait_gone(bots, timeout=1) == []
    # Stopped by the dispatcher's shutdown, not merely by the parent-death signal:
    assert dispatcher_process.log().count("exited (stopped)") == 2


def test_a_killed_dispatcher_leaves_no_orphan_bots(dispatcher_process):
    process, base = dispatcher_process.process, dispatcher_process.base_url
    start_bots(base, 2)
    bots = children_of(process.pid)
    assert len(bots) == 2
    process.kill()
    process.wait()
    assert wait_gone(bots) == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MACHINES": "kubernetes"}, "MACHINES='kubernetes' is not one of"),
        ({"HOST": "0.0.0.0"}, "DISPATCHER_API_KEYS must be set to listen on HOST=0.0.0.0"),
        ({"MACHINES": "fly"}, "DISPATCHER_API_KEYS must be set when MACHINES=fly"),
        ({"MAX_CONCURRENT_SESSIONS": "many"}, "MAX_CONCURRENT_SESSIONS='many' is not a whole number"),
        ({"MAX_SESSION_SECONDS": "0"}, "MAX_SESSION_SECONDS=0 must be at least 10"),
        ({"KEEP_ALIVE_SECONDS": "long"}, "KEEP_ALIVE_SECONDS='long' is not a whole number"),
    ],
)
def test_bad_configuration_fails_fast_with_a_message_naming_the_variable(env, message):
    clean = {k: v for k, v in os.environ.items() if k not in ("HOST", "MACHINES", "DISPATCHER_API_KEYS")}
    result = subprocess.run(
        [sys.executable, "-m", "dispatcher"], env={**clean, **env}, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
