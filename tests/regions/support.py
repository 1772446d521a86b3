"""The regions tests' shared helpers: real regional dispatchers (`python -m dispatcher`) on loopback,
each region's settings, and reads of what a region sees of its peers."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from tests.dispatcher.conftest import API_KEY, STANDIN_BOT, STANDIN_LOCAL_BOT_ENV
from tests.support.ports import free_port
from tests.support.processes import DispatcherProcess, run_dispatcher

SECRET = "region-secret-0123456789abcdefghij"
ADMIN_KEY = "region-peers-admin-key-0123456789"  # what a peer last advertised is an admin's read at /healthz
RegionPair = tuple[dict[str, str], dict[str, DispatcherProcess]]  # the regions' URLs and processes


def region_env(name: str, urls: dict[str, str], secret: str = SECRET) -> dict[str, str]:
    return {**STANDIN_LOCAL_BOT_ENV, "LOCAL_BOT_COMMAND": shlex.join(STANDIN_BOT), "STANDIN_MODE": "serve",
            "RESERVE_MAX_IDLE": "0", "DISPATCHER_API_KEYS": API_KEY, "DISPATCHER_ADMIN_KEYS": ADMIN_KEY, "REGION": name,
            "REGIONS": ",".join(f"{n}={u}" for n, u in urls.items()), "REGION_SECRET": secret}


@contextmanager
def regions(tmp_path: Path, names: tuple[str, ...], extra: dict[str, dict[str, str]] | None = None,
            ) -> Iterator[tuple[dict[str, str], dict[str, DispatcherProcess]]]:
    """Real dispatchers, one per region, on loopback; `extra`: a region's own settings."""
    ports = {name: free_port() for name in names}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    with ExitStack() as stack:
        running = {name: stack.enter_context(run_dispatcher(
            tmp_path, {**region_env(name, urls), **(extra or {}).get(name, {})}, port=ports[name],
            log_name=f"{name}.log")) for name in names}
        yield urls, running


def health(process: DispatcherProcess) -> dict:
    """Its /healthz as an admin key reads it: each peer's whole view (anyone else sees reachability only)."""
    return httpx.get(f"{process.base_url}/healthz", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=2).json()


def until(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until `condition` held; fails past `timeout`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - started


def more_polls(polled: DispatcherProcess, count: int) -> None:
    """Until `polled` has answered `count` more of its peers' polls (its access log's lines): each
    poll's answer has been read by the poller that sent the one after it."""
    polls = polled.log().count("GET /regions/state")
    until(lambda: polled.log().count("GET /regions/state") >= polls + count, 60)


def reachable(process: DispatcherProcess, peer: str) -> bool:
    return bool(health(process).get("regions", {}).get(peer, {}).get("reachable"))



def start_and_wait(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("HOST", "MACHINES", "DISPATCHER_API_KEYS")}
    return subprocess.run([sys.executable, "-m", "dispatcher"], env={**clean, **env, "PORT": str(free_port())},
                          capture_output=True, text=True, timeout=60)
