"""Process helpers for tests that run the dispatcher (and its bots) as real processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.ports import free_port


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (a zombie is dead but not reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def listening_sockets(pid: int) -> list[str]:
    """The TCP sockets in LISTEN state and the UDP sockets bound by `pid` ("tcp:port" / "udp:port").

    Read from /proc: the socket inodes among the process's file descriptors, matched against the
    kernel's socket tables. UDP sockets are listed too, so a caller can tell media from a server.
    """
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                local, state, inode = cols[1], cols[3], cols[9]
                if inode in inodes and (table.startswith("udp") or state == "0A"):
                    found.append(f"{table.rstrip('6')}:{int(local.rsplit(':', 1)[1], 16)}")
    return found


def listens(process: subprocess.Popen[Any], port: int) -> bool:
    """`process` itself listens on `port`. A /healthz answer alone is not its: a port chosen free
    can be taken by another test's server before the process binds it (a loaded machine widens
    that gap), and that server answered while the process had failed to bind (401 for every key)."""
    try:
        return f"tcp:{port}" in listening_sockets(process.pid)
    except OSError:  # it has ended: the caller sees that
        return False


def processes_with_env(name: str, value: str) -> list[int]:
    """Live processes of this user whose environment has `name=value` (a test's own marker), so
    bots are found even after their parent died and they were re-parented."""
    marker = f"{name}={value}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as environ:
                if marker in environ.read().split(b"\0") and pid_alive(int(entry)):
                    found.append(int(entry))
        except OSError:
            pass
    return found


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                if int(stat.read().split(") ", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
        except (FileNotFoundError, ProcessLookupError):
            pass
    return found


def wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    """Wait until none of `pids` is alive; return the ones still alive at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(map(pid_alive, pids)):
        time.sleep(0.05)
    return [pid for pid in pids if pid_alive(pid)]


def wait_until_catching(pid: int, signum: int, timeout: float = 30.0) -> None:
    """Wait until the process has a handler for `signum` (the SigCgt mask in /proc/<pid>/status)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/status") as status:
            caught = next(int(line.split()[1], 16) for line in status if line.startswith("SigCgt:"))
        if caught & (1 << (signum - 1)):
            return
        time.sleep(0.005)
    raise AssertionError(f"process {pid} never installed a handler for signal {signum}")


async def signal_once_caught(pid: int, signum: int, timeout: float = 30.0) -> None:
    """Sends `signum` once the process handles it (`wait_until_catching`). Before that the signal's
    default action, the end for SIGUSR1 and SIGTERM, applies: a bot still starting on a busy machine
    was ended by the SIGUSR1 meant to make it dial. `timeout` is a safety net."""
    await asyncio.to_thread(wait_until_catching, pid, signum, timeout)
    os.kill(pid, signum)


def terminate(process: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; always reaped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class DispatcherProcess:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


# How long a dispatcher may take to answer /healthz: a safety net, never what a test checks. A start
# took 26 s beside a CPU hog at a load average of 14 on 2 cores, against the 30 s this was; at a load
# average of 18 five dispatchers had not printed a line after 60 s (docs/testing.md).
READY_TIMEOUT = 150.0


PORT_TAKEN = "Address already in use"
PORT_TRIES = 3  # a number another test's server took between the pick and the bind: pick again


@contextmanager
def run_dispatcher(
    log_dir: Path, env: Mapping[str, str] | None = None, ready_timeout: float = READY_TIMEOUT,
    command_prefix: Sequence[str] = (), port: int | None = None, log_name: str = "dispatcher.log",
) -> Iterator[DispatcherProcess]:
    """`python -m dispatcher` on a loopback port (a free one unless given), killed (with its bots) on
    exit; `command_prefix` runs it through another command that execs it (its pid stays the dispatcher's)."""
    for attempt in range(1, PORT_TRIES + 1):
        chosen = port or free_port()
        process, running = _launch(log_dir / log_name, env, command_prefix, chosen)
        try:
            came_up = _wait_until_ready(running, chosen, ready_timeout)
        except BaseException:
            terminate(process, grace=15)
            raise
        if came_up:
            break
        terminate(process, grace=15)
        if port is not None or attempt == PORT_TRIES or PORT_TAKEN not in running.log():
            raise RuntimeError(f"dispatcher did not come up:\n{running.log()}")
    try:
        yield running
    finally:
        terminate(process, grace=15)


def _launch(log_path: Path, env: Mapping[str, str] | None, command_prefix: Sequence[str],
            port: int) -> tuple[subprocess.Popen[bytes], DispatcherProcess]:
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*command_prefix, sys.executable, "-m", "dispatcher"],
            env={**os.environ, **(env or {}), "HOST": "127.0.0.1", "PORT": str(port)},
            stdout=log,
            stderr=log,
        )
    return process, DispatcherProcess(process, f"http://127.0.0.1:{port}", log_path)


def _wait_until_ready(running: DispatcherProcess, port: int, ready_timeout: float) -> bool:
    """True once it answers /healthz on its port; False if it exited first; raises past the timeout."""
    deadline = time.monotonic() + ready_timeout
    with httpx.Client(timeout=0.5) as client:  # one client for the polls: a client each costs ~5 ms of CPU
        while True:
            try:
                if client.get(f"{running.base_url}/healthz").status_code == 200 and listens(running.process, port):
                    return True
            except httpx.TransportError:
                pass
            if running.process.poll() is not None:
                return False
            if time.monotonic() > deadline:
                raise RuntimeError(f"dispatcher did not come up:\n{running.log()}")
            time.sleep(0.05)
