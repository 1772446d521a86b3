"""A named key's rotation through a rolling deploy, with real dispatcher processes on a real
redis-server: replica 0 still has the old key beside the new one (`team:OLD,team:NEW`), replica 1
only the new one. A session started with the old key is read, listed and stopped with the new one
at the other replica; the old key, removed there, is refused."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.replicas.conftest import TIMEOUT, replica_env
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.redis_server import RedisServer

OLD, NEW = "team-old-key-5d1c0b2a9e", "team-new-key-8f3a7c6e41"
TOKEN = "rotation-of-named-keys-deployment-secret-0123"


@pytest.fixture
def rolling(tmp_path: Path, store: RedisServer) -> Iterator[list[DispatcherProcess]]:
    with ExitStack() as stack:
        replicas = []
        for n, keys in enumerate((f"team:{OLD},team:{NEW}", f"team:{NEW}")):
            (tmp_path / f"r{n}").mkdir()
            env = replica_env(store, str(tmp_path), f"r-{n}", DISPATCHER_API_KEYS=keys, BOT_CHANNEL_TOKEN=TOKEN)
            replicas.append(stack.enter_context(run_dispatcher(tmp_path / f"r{n}", env)))
        yield replicas


def call(method: str, replica: DispatcherProcess, path: str, key: str, **kwargs: object) -> httpx.Response:
    return httpx.request(method, replica.base_url + path, timeout=TIMEOUT,  # type: ignore[arg-type]
                         headers={"Authorization": f"Bearer {key}"}, **kwargs)


def test_a_session_started_with_the_old_key_is_the_new_keys_and_the_removed_key_is_refused(
        rolling: list[DispatcherProcess]) -> None:
    before, after = rolling
    started = call("POST", before, "/start?wait=started", OLD, json={"body": {}})
    assert started.status_code == 201, started.text
    session_id = started.json()["session_id"]
    read = call("GET", after, f"/sessions/{session_id}", NEW)
    assert read.status_code == 200, read.text
    assert read.json()["status"] == "started"
    assert call("GET", before, f"/sessions/{session_id}", NEW).status_code == 200
    listed = call("GET", after, "/sessions", NEW)  # the listing's entry, written at the other replica
    assert listed.status_code == 200, listed.text
    assert [s["session_id"] for s in listed.json()["sessions"]] == [session_id]
    refused = call("GET", after, f"/sessions/{session_id}", OLD)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == "unauthorized"
    stopped = call("DELETE", after, f"/sessions/{session_id}", NEW)
    assert stopped.status_code in (200, 202, 204), stopped.text
    assert call("GET", after, "/sessions", OLD).status_code == 401
    assert call("POST", after, "/start", OLD, json={"body": {}}).status_code == 401
