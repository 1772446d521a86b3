"""`python -m dispatcher` as a real process: configuration errors, and no orphaned bots."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.dispatcher.conftest import STANDIN_BOT
from tests.dispatcher.test_sessions import pid_alive


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().split(") ", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (FileNotFoundError, ProcessLookupError):
                pass
    return found


@pytest.fixture
def dispatcher_process(tmp_path):
    port = free_port()
    env = {**os.environ, "PORT": str(port), "LOCAL_BOT_COMMAND": shlex.join(STANDIN_BOT), "STANDIN_MODE": "serve"}
    log = open(tmp_path / "dispatcher.log", "wb")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen([sys.executable, "-m", "dispatcher"], env=env, stdout=log, stderr=log)
    process.log_path = tmp_path / "dispatcher.log"
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=0.5).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    yield process, base
    if process.poll() is None:
        process.kill()
        process.wait()
    log.close()


def start_bots(base: str, count: int) -> None:
    for _ in range(count):
        assert httpx.post(f"{base}/start?wait=started", json={}, timeout=20).status_code == 201


def wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(map(pid_alive_or_orphan, pids)):
        time.sleep(0.05)
    return [pid for pid in pids if pid_alive_or_orphan(pid)]


def pid_alive_or_orphan(pid: int) -> bool:
    try:
        return pid_alive(pid)
    except FileNotFoundError:
        return False


def test_sigterm_stops_every_bot_before_the_dispatcher_exits(dispatcher_process):
    process, base = dispatcher_process
    start_bots(base, 2)
    bots = children_of(process.pid)
    assert len(bots) == 2
    process.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal so supervisors see why it exited.
    assert process.wait(timeout=15) == -signal.SIGTERM
    assert wait_gone(bots, timeout=1) == []
    # Stopped by the dispatcher's shutdown, not merely by the parent-death signal:
    assert process.log_path.read_text().count("exited (stopped)") == 2


def test_a_killed_dispatcher_leaves_no_orphan_bots(dispatcher_process):
    process, base = dispatcher_process
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
