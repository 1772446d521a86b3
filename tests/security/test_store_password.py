"""N2 locally: a dispatcher refuses a coordination store that takes anyone. Local bots are
processes of the dispatcher's host, so they reach a store on loopback (tests/security/
test_local_bot_isolation.py has a bot try it); the store's password, which no bot is given, is all
that keeps them out. `python -m dispatcher` with a `REDIS_URL` that carries none, and no
`REDIS_PASSWORD`, stops at start-up with one line saying so, on any host, loopback included."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.processes import run_dispatcher
from tests.support.redis_server import RedisServer, redis_server

BASE = {"DISPATCHER_API_KEYS": "store-password-key-0123456789abcdef", "REPLICA_ID": "r-pw",
        "REDIS_MESSAGE_SECRET": "store-message-secret-" + "m" * 30, "RESERVE_MAX_IDLE": "0"}


@pytest.fixture
def store(tmp_path: Path) -> RedisServer:
    with redis_server(tmp_path) as running:
        yield running


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.5"])
def test_a_store_url_without_a_password_stops_the_dispatcher_in_one_line(host: str) -> None:
    env = {**os.environ, **BASE, "REDIS_URL": f"redis://{host}:6379/0", "PORT": "0"}
    env.pop("REDIS_PASSWORD", None)
    ended = subprocess.run([sys.executable, "-m", "dispatcher"], env=env, capture_output=True, text=True, timeout=60)
    assert ended.returncode == 2, ended.stderr
    lines = ended.stderr.strip().splitlines()
    assert len(lines) == 1 and "REDIS_URL carries no password" in lines[0], ended.stderr


@pytest.mark.parametrize("spelling", ["REDIS_PASSWORD", "in the URL"])
def test_with_the_stores_password_the_dispatcher_starts(spelling: str, store: RedisServer, tmp_path: Path) -> None:
    env = {**BASE, **store.env}
    if spelling == "in the URL":
        env["REDIS_URL"] = env["REDIS_URL"].replace("@", f":{env.pop('REDIS_PASSWORD')}@", 1)
    with run_dispatcher(tmp_path, env, ready_timeout=60) as dispatcher:
        assert httpx.get(f"{dispatcher.base_url}/healthz", timeout=30).status_code == 200
