"""A store writer (the store user's password, not `REDIS_MESSAGE_SECRET`) against what
`GET /sessions/{id}` tells the key that started a session (dispatcher/store/timelines.py).

Pushed events must not be shown as the session's own (a trace id, an error with a number to call),
and a list grown to 200,000 entries must not break the read: a real `python -m dispatcher` on a
real redis-server with the stack's access rules, the stand-in bot.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from stacks.aws.store import USER
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_LOCAL_BOT_ENV
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.redis_server import RedisServer, redis_server
from tests.support.session_api import METRICS_ADMIN, METRICS_AUTH

KEY = "store-timeline-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
WAIT = 60.0
FORGED_TRACE = "f" * 32
FORGED_ERROR = "billing: card declined, call +1 900 555 0100 to fix"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, DispatcherProcess]]:
    root = tmp_path_factory.mktemp("store-timeline")
    with redis_server(root) as store:
        env = {**store.env, **STANDIN_LOCAL_BOT_ENV, "LOCAL_BOT_COMMAND": shlex.join(STANDIN_BOT),
               "STANDIN_MODE": "serve", "REPLICA_ID": "r-a", "DISPATCHER_API_KEYS": KEY, "RESERVE_MAX_IDLE": "0",
               **METRICS_ADMIN}
        with run_dispatcher(root, env) as dispatcher:
            yield store, dispatcher


def a_session(dispatcher: DispatcherProcess) -> str:
    answer = httpx.post(f"{dispatcher.base_url}/start?wait=started", json={}, headers=AUTH, timeout=WAIT)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["session_id"])


def writer(store: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(f"redis://{USER}:{store.password}@127.0.0.1:{store.port}/0")


def test_events_a_store_writer_pushes_are_not_told_to_the_sessions_key(served) -> None:  # noqa: ANN001
    store, dispatcher = served
    session_id = a_session(dispatcher)
    api = httpx.Client(base_url=dispatcher.base_url, headers=AUTH, timeout=WAIT)
    before = api.get(f"/sessions/{session_id}/timeline").json()
    assert before["trace_id"] and before["trace_id"] != FORGED_TRACE  # control: the session's own trace

    key = f"{{voicefleet}}:timeline:{session_id}"
    store_writer = writer(store)
    store_writer.rpush(key, json.dumps({"event": "requested", "at": 0, "replica": "r-a", "trace_id": FORGED_TRACE}))
    store_writer.rpush(key, json.dumps({"event": "error", "at": 9e9, "replica": "r-a", "detail": FORGED_ERROR}))

    status = api.get(f"/sessions/{session_id}")
    timeline = api.get(f"/sessions/{session_id}/timeline")
    assert status.status_code == 200 and timeline.status_code == 200
    assert FORGED_TRACE not in status.text + timeline.text
    assert FORGED_ERROR not in status.text + timeline.text
    assert timeline.json()["trace_id"] == before["trace_id"]
    assert timeline.json()["events"] == before["events"]  # nothing else came or went
    metrics = api.get("/metrics", headers=METRICS_AUTH).text
    assert 'voicefleet_store_messages_refused_total{channel="timeline",reason="malformed"}' in metrics


def test_a_timeline_grown_to_200k_entries_is_still_read_quickly(served) -> None:  # noqa: ANN001
    store, dispatcher = served
    session_id = a_session(dispatcher)
    api = httpx.Client(base_url=dispatcher.base_url, headers=AUTH, timeout=WAIT)
    before = api.get(f"/sessions/{session_id}/timeline").json()["events"]
    assert before  # control

    key = f"{{voicefleet}}:timeline:{session_id}"
    entry = json.dumps({"event": "joined", "at": 1, "replica": "r-a", "machine_id": "x" * 60})
    pipe = writer(store).pipeline(transaction=False)
    for n in range(200_000):
        pipe.rpush(key, entry)
        if n % 10_000 == 9_999:
            pipe.execute()
    pipe.execute()

    started = time.monotonic()
    timeline = api.get(f"/sessions/{session_id}/timeline")
    status = api.get(f"/sessions/{session_id}")
    took = time.monotonic() - started
    assert timeline.status_code == 200, timeline.text  # it used to fall back to memory: 404
    assert timeline.json()["events"] == before  # the session's own, none of the pushed ones
    assert status.status_code == 200 and status.json()["status"] in ("started", "joined")
    assert took < 5.0, took  # two reads of at most 128 entries each, not 200,000
