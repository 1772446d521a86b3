"""Finding: `DELETE /sessions/{id}` of an id that never started (any id a key can tag with its own
owner tag) recorded `stop_requested` before knowing the session existed, so each call kept a
timeline in the store for a day (≈1.7 M a day per key and replica at the read rate), and in one
process evicted other keys' timelines. Now only a session that exists records its stop, and only a
`requested` event opens a timeline.

A real `python -m dispatcher` (local stand-in bots) on a real redis-server with the AWS stack's
user rules (tests/support/redis_server.py); the store's timeline keys are counted by its admin."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dispatcher.api.auth import Authenticator
from dispatcher.sessions.ids import new_session_id
from dispatcher.settings import hash_api_key
from tests.replicas.conftest import API_KEY, AUTH, start_fleet
from tests.support.redis_server import RedisServer, redis_server

pytestmark = pytest.mark.slow  # a dispatcher and a redis-server
MADE_UP = 30


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


def timeline_keys(store: RedisServer) -> list[str]:
    return sorted(store.admin().scan_iter(match="{voicefleet}:timeline:*"))


def test_a_stop_of_a_session_that_never_started_writes_no_timeline(tmp_path: Path, store: RedisServer) -> None:
    owner_key = Authenticator(frozenset({hash_api_key(API_KEY)})).identify(f"Bearer {API_KEY}").owner_key
    with start_fleet(tmp_path, store, 1) as fleet:
        base = fleet.replicas[0].base_url
        started = httpx.post(f"{base}/start", json={}, headers=AUTH, timeout=60)
        assert started.status_code == 201, started.text
        session_id = started.json()["session_id"]
        deadline = time.monotonic() + 10
        while len(timeline_keys(store)) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(timeline_keys(store)) == 1  # control: a real session's timeline is kept

        for _ in range(MADE_UP):  # ids carrying the key's own tag, which no start ever made
            made_up = new_session_id(owner_key, None)
            answer = httpx.delete(f"{base}/sessions/{made_up}", headers=AUTH, timeout=30)
            assert answer.status_code == 404, answer.text  # no session there ever was: nothing to stop
        stopped = httpx.delete(f"{base}/sessions/{session_id}", headers=AUTH, timeout=30)
        assert stopped.status_code in (202, 204), stopped.text
        deadline = time.monotonic() + 10
        events: list[str] = []
        while "stop_requested" not in events and time.monotonic() < deadline:
            timeline = httpx.get(f"{base}/sessions/{session_id}/timeline", headers=AUTH, timeout=30)
            events = [e["event"] for e in timeline.json()["events"]]
            time.sleep(0.05)
        assert "stop_requested" in events, events  # control: an existing session's stop is recorded
        made_up_timeline = httpx.get(f"{base}/sessions/{made_up}/timeline", headers=AUTH, timeout=30)
        keys = timeline_keys(store)

    assert keys == [f"{{voicefleet}}:timeline:{session_id}"], f"{len(keys)} timelines for 1 session"
    assert made_up_timeline.status_code == 404 or made_up_timeline.json()["events"] == [], made_up_timeline.text
